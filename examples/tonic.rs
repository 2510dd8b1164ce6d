//! A gRPC server (tonic) behind Palisade: errors come back as gRPC statuses.
//!
//! The service is tonic-health's `grpc.health.v1.Health`, which ships generated code, so no
//! `protoc` is needed. A small demo layer delays any call carrying an `x-demo-delay-ms`
//! metadata entry (to show the deadline and the bulkhead) and fails any call carrying
//! `x-demo-fail` with UNAVAILABLE (to open the breaker).
//!
//! ```text
//! cargo run --example tonic                 # serves on 127.0.0.1:50051 until Ctrl-C
//! cargo run --example tonic -- --selftest   # ephemeral port, calls itself, prints, exits
//! ```
//!
//! Stack, outermost first, and the status each refusal becomes:
//!
//! | layer | refusal → gRPC status |
//! |---|---|
//! | `HandleRejectionsLayer::grpc()` | turns every rejection below into a trailers-only `grpc-status` |
//! | rate limit, 20/min per `x-api-key` metadata | RESOURCE_EXHAUSTED |
//! | breaker (opens at 50 % failures over ≥ 5 calls, for 30 s) | UNAVAILABLE |
//! | timeout 300 ms (a shorter incoming `grpc-timeout` wins) | DEADLINE_EXCEEDED |
//! | bulkhead, 2 calls at once, no queue | RESOURCE_EXHAUSTED |
//! | demo delay / fail → the health service | |

use std::net::SocketAddr;
use std::time::Duration;

use palisade::key::key_fn;
use palisade::prelude::*;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

/// The server-side budget per call.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(300);
/// Calls per minute per `x-api-key`.
pub(crate) const RATE_PER_MINUTE: u32 = 20;

mod delay {
    //! A demo-only layer: answers UNAVAILABLE to a call carrying `x-demo-fail`, and sleeps for
    //! `x-demo-delay-ms` milliseconds before calling inner.
    use std::time::Duration;
    use tower::{Service, ServiceExt};

    #[derive(Clone, Debug)]
    pub(crate) struct Delay<S>(pub(crate) S);

    impl<S, B, ResB> Service<http::Request<B>> for Delay<S>
    where
        S: Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
        ResB: Default + Send + 'static,
        S::Future: Send,
        B: Send + 'static,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), S::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            if req.headers().contains_key("x-demo-fail") {
                let res = tonic::Status::unavailable("demo failure").into_http();
                return Box::pin(async move { Ok(res) });
            }
            let ms = req
                .headers()
                .get("x-demo-delay-ms")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let inner = self.0.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                inner.oneshot(req).await
            })
        }
    }
}

/// Serves the health service behind the Palisade stack on `listener` until the future is dropped.
pub(crate) async fn serve(listener: TcpListener) -> Result<(), BoxError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let stack = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::grpc())
        .rate_limit_with(RateLimitLayer::new(
            key_fn(|req: &http::Request<tonic::body::Body>| {
                Ok(req
                    .headers()
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("anonymous")
                    .to_owned())
            }),
            Quota::per_minute("calls", RATE_PER_MINUTE)?,
        ))
        .breaker_with(
            CircuitBreakerLayer::builder()
                .window(SlidingWindow::Count(10))
                .minimum_calls(5)
                .failure_rate_threshold(50.0)
                .wait_in_open(Duration::from_secs(30))
                .build()?,
        )
        .timeout_with(TIMEOUT)
        .bulkhead_with(BulkheadLayer::builder().max_concurrent(2).build()?)
        .layer_fn(delay::Delay);
    Server::builder()
        .layer(stack)
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let selftest = std::env::args().any(|a| a == "--selftest");
    let addr: SocketAddr = if selftest {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:50051"
    }
    .parse()?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("gRPC health service behind Palisade on {addr} (timeout {TIMEOUT:?})");
    if !selftest {
        return serve(listener).await;
    }
    tokio::spawn(serve(listener));
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);

    let ok = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    println!(
        "Check                         → {:?}",
        ServingStatus::try_from(ok.get_ref().status)?
    );

    let mut slow = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    slow.metadata_mut()
        .insert("x-demo-delay-ms", "1000".parse()?);
    let status = client.check(slow).await.unwrap_err();
    println!(
        "Check, 1 s handler            → {:?} ({})",
        status.code(),
        status.message()
    );

    let mut budget = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    budget
        .metadata_mut()
        .insert("x-demo-delay-ms", "200".parse()?);
    budget.set_timeout(Duration::from_millis(50));
    let status = client.check(budget).await.unwrap_err();
    // The server saw the 50 ms budget in `grpc-timeout` and answered DEADLINE_EXCEEDED at
    // that moment; tonic's client enforces it too, so either side may report it first.
    println!(
        "Check, grpc-timeout 50 ms     → {:?} ({})",
        status.code(),
        status.message()
    );

    for _ in 0..5 {
        let mut fail = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        fail.metadata_mut().insert("x-demo-fail", "1".parse()?);
        let _ = client.check(fail).await;
    }
    let status = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    println!(
        "Check, after 5 failures       → {:?} ({})",
        status.code(),
        status.message()
    );

    let mut last = None;
    for _ in 0..=RATE_PER_MINUTE {
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        req.metadata_mut().insert("x-api-key", "selftest".parse()?);
        last = Some(client.check(req).await);
    }
    if let Some(Err(status)) = last {
        println!(
            "Check #{} with one x-api-key  → {:?} ({})",
            RATE_PER_MINUTE + 1,
            status.code(),
            status.message()
        );
    }
    Ok(())
}
