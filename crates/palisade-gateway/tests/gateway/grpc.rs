//! gRPC through the proxy with a tonic client: an h2 upstream (tonic-health's
//! `grpc.health.v1.Health`), `TE: trailers` and `grpc-timeout` carried upstream, a shorter
//! `grpc-timeout` honoured by the route's timeout, and a rejection as trailers-only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Service, ServiceExt};

use crate::support::{Gateway, bounded, config};

/// Records each call's headers and sleeps `delay` milliseconds before the health service.
#[derive(Clone)]
struct Upstream<S> {
    inner: S,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    delay: Arc<AtomicU64>,
}

impl<S, B> Service<http::Request<B>> for Upstream<S>
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
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.seen.lock().unwrap().push(req.headers().clone());
        let ms = self.delay.load(Ordering::Relaxed);
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            inner.oneshot(req).await
        })
    }
}

struct GrpcUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    delay: Arc<AtomicU64>,
}

async fn grpc_upstream() -> GrpcUpstream {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let delay = Arc::new(AtomicU64::new(0));
    let (s, d) = (Arc::clone(&seen), Arc::clone(&delay));
    let layer = tower::layer::layer_fn(move |inner| Upstream {
        inner,
        seen: Arc::clone(&s),
        delay: Arc::clone(&d),
    });
    tokio::spawn(async move {
        // Keeps the reporter (and so the Serving status) alive with the server.
        let _reporter = reporter;
        let _ = Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });
    GrpcUpstream { addr, seen, delay }
}

fn check() -> tonic::Request<HealthCheckRequest> {
    tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_goes_through_with_deadlines_and_trailers_only_rejections() {
    let up = grpc_upstream().await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.grpc]
endpoints = ["{}"]
protocol = "h2"

[fallback]
timeout = {{ timeout = "5s" }}
rate_limit = {{ quotas = [{{ name = "calls", limit = 3, window = "1m" }}] }}
forward = {{ upstream = "grpc" }}
"#,
            up.addr
        ),
    ));
    let channel = bounded("connect", async {
        Channel::from_shared(gw.url(""))
            .unwrap()
            .connect()
            .await
            .unwrap()
    })
    .await;
    let mut client = HealthClient::new(channel);
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let raw_check = |timeout: Option<&str>| {
        let mut req = http::Request::post(gw.url("/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(t) = timeout {
            req = req.header("grpc-timeout", t);
        }
        // One uncompressed, empty `HealthCheckRequest` message.
        req.body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap()
    };

    // 1. A call with a deadline goes through over h2; the upstream gets `TE: trailers` and a
    // `grpc-timeout` no longer than the client's.
    let mut req = check();
    req.set_timeout(Duration::from_secs(3));
    let res = bounded("Check", client.check(req)).await.unwrap();
    assert_eq!(
        ServingStatus::try_from(res.get_ref().status).unwrap(),
        ServingStatus::Serving
    );
    let seen = up.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen["te"], "trailers");
    assert_eq!(seen["content-type"], "application/grpc");
    let budget = decode_grpc_timeout(&seen["grpc-timeout"]);
    assert!(
        budget <= Duration::from_secs(3) && budget > Duration::from_secs(2),
        "grpc-timeout upstream: {:?}",
        seen["grpc-timeout"]
    );

    // 2. A shorter incoming `grpc-timeout` is honoured by the route's timeout: the gateway
    // answers DEADLINE_EXCEEDED (trailers-only) at ~200 ms, not the upstream's 1 s. (Sent
    // raw: tonic's client would enforce the deadline itself and report CANCELLED.)
    up.delay.store(1_000, Ordering::Relaxed);
    let start = Instant::now();
    let res = bounded(
        "raw call past its deadline",
        h2.request(raw_check(Some("200m"))),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "4", "{:?}", res.headers());
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    up.delay.store(0, Ordering::Relaxed);

    // 3. The third call in the minute passes; the fourth is refused by the rate limit as a
    // gRPC status.
    bounded("Check", client.check(check())).await.unwrap();
    let status = bounded("Check over the limit", client.check(check()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // The refusal is trailers-only: one HEADERS frame with `:status 200`, `grpc-status` in
    // the headers and no body.
    let res = bounded("raw h2 call", h2.request(raw_check(None)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "8", "{:?}", res.headers());
    assert!(res.headers().contains_key("grpc-message"));
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(body.is_empty());
}

/// Decodes a `grpc-timeout` value (`123m`, `5S`, …).
fn decode_grpc_timeout(v: &http::HeaderValue) -> Duration {
    let s = v.to_str().unwrap();
    let (n, unit) = s.split_at(s.len() - 1);
    let n: u64 = n.parse().unwrap();
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        other => panic!("unit {other}"),
    }
}
