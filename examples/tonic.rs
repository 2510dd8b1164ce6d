//! A gRPC server (tonic) behind Palisade: errors come back as gRPC statuses.
//!
//! The service is tonic-health's `grpc.health.v1.Health`, which ships generated code, so no
//! `protoc` is needed. To show a deadline being enforced, a small demo layer delays any call
//! carrying an `x-demo-delay-ms` metadata entry.
//!
//! ```text
//! cargo run --example tonic                 # serves on 127.0.0.1:50051 until Ctrl-C
//! cargo run --example tonic -- --selftest   # ephemeral port, calls itself, prints, exits
//! ```
//!
//! Stack, outermost first: `HandleRejectionsLayer::grpc()` (rejections → trailers-only
//! `grpc-status`) → timeout 300 ms (a shorter incoming `grpc-timeout` wins) → demo delay →
//! the health service.

use std::net::SocketAddr;
use std::time::Duration;

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

mod delay {
    //! A demo-only layer: sleeps for `x-demo-delay-ms` milliseconds before calling inner.
    use std::time::Duration;
    use tower::{Service, ServiceExt};

    #[derive(Clone, Debug)]
    pub(crate) struct Delay<S>(pub(crate) S);

    impl<S, B> Service<http::Request<B>> for Delay<S>
    where
        S: Service<http::Request<B>> + Clone + Send + 'static,
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
        .timeout_with(TIMEOUT)
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
    // tonic's client enforces its own grpc-timeout too, so it gives up first (CANCELLED,
    // "Timeout expired"); the server saw the same 50 ms budget and dropped the work.
    println!(
        "Check, grpc-timeout 50 ms     → {:?} ({})",
        status.code(),
        status.message()
    );
    Ok(())
}
