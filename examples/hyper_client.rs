//! Palisade around hyper-util's legacy `Client`, calling a local flaky server.
//!
//! ```text
//! cargo run --example hyper_client
//! ```
//!
//! The same client stack as `reqwest_client`, on `http::Request<B>`, outermost first: a 2 s
//! deadline for the whole call, retry ×3 with full jitter and a retry budget, a wait-mode
//! rate limit (100 attempts/s), a breaker, and a 300 ms per-attempt timeout in outbound mode
//! (it forwards the budget as `grpc-timeout`). The retry layer hands the client a
//! [`RetryBody`], which replays buffered bytes on each attempt, so the client is built for
//! `RetryBody<B>`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::breaker::BreakerHandle;
use palisade::key::GlobalKey;
use palisade::prelude::*;
use palisade::ratelimit::Mode;
use palisade::retry::{RetryBody, TpsBudget};
use tower::{Service, ServiceBuilder, ServiceExt};

#[path = "common/flaky.rs"]
pub(crate) mod flaky;
pub(crate) use flaky::{Hits, upstream};

/// The request body the stack accepts.
pub(crate) type Body = Full<Bytes>;

/// The client stack around hyper-util's client, and its breaker's handle.
pub(crate) fn client() -> Result<
    (
        impl Service<http::Request<Body>, Response = http::Response<Incoming>, Error = BoxError> + Clone,
        BreakerHandle,
    ),
    ConfigError,
> {
    let breaker = CircuitBreakerLayer::builder()
        .name("upstream")
        .window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(5))
        .build()?;
    let handle = breaker.handle();
    let svc = ServiceBuilder::new()
        .timeout_with(Duration::from_secs(2))
        .retry_with(
            RetryLayer::new()
                .max_attempts(3)
                .backoff(Backoff::full_jitter(
                    Duration::from_millis(10),
                    Duration::from_millis(200),
                ))
                .budget(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        )
        .rate_limit_with(
            RateLimitLayer::new(GlobalKey, Quota::per_second("upstream", 100)?)
                .mode(Mode::Wait)
                .max_wait(Duration::from_secs(1)),
        )
        .breaker_with(breaker)
        .timeout_with(TimeoutLayer::new(Duration::from_millis(300)).outbound(true))
        .service(Client::builder(TokioExecutor::new()).build_http::<RetryBody<Body>>());
    Ok((svc, handle))
}

fn get_req(base: &str, path: &str) -> http::Request<Body> {
    http::Request::get(format!("{base}{path}"))
        .body(Full::default())
        .expect("a valid request")
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let hits = Arc::new(Hits::default());
    let app = upstream(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (client, breaker) = client()?;
    let res = client.clone().oneshot(get_req(&base, "/fast")).await?;
    println!(
        "GET /fast  → {} (server saw grpc-timeout {})",
        res.status(),
        res.headers()["x-seen-grpc-timeout"].to_str()?
    );

    let res = client.clone().oneshot(get_req(&base, "/flaky")).await?;
    println!(
        "GET /flaky → {} after {} upstream calls (two 503s retried)",
        res.status(),
        hits.flaky.load(Ordering::SeqCst)
    );

    let err = client
        .clone()
        .oneshot(get_req(&base, "/slow"))
        .await
        .unwrap_err();
    println!(
        "GET /slow  → error: {err} (each of 3 attempts timed out after 300 ms; is Elapsed: {})",
        err.is::<palisade::rejection::Elapsed>()
    );

    let res = client.clone().oneshot(get_req(&base, "/down")).await?;
    println!(
        "GET /down  → {} after {} upstream calls; breaker {:?}",
        res.status(),
        hits.down.load(Ordering::SeqCst),
        breaker.state()
    );
    let err = client.oneshot(get_req(&base, "/down")).await.unwrap_err();
    println!(
        "GET /down  → error: {err} (no call made: {} upstream calls)",
        hits.down.load(Ordering::SeqCst)
    );
    Ok(())
}
