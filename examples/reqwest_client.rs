//! Palisade around an outgoing `reqwest::Client`, calling a local flaky server.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```
//!
//! `reqwest::Client` implements `tower::Service<reqwest::Request>`, so Palisade layers wrap it
//! directly. The client stack, outermost first:
//!
//! | layer | why |
//! |---|---|
//! | timeout 2 s | one deadline for the whole call, retries included |
//! | retry ×3, full jitter, budget | 502/503/504/429, resets and per-attempt timeouts; at most 20 % extra load (+10/s) |
//! | rate limit, wait mode | at most 100 attempts per second leave this process; the rest wait |
//! | breaker | once half of the last 20 attempts (10 at least) failed, stop calling for 5 s |
//! | timeout 300 ms, outbound | per attempt; tells the server with `grpc-timeout` |
//!
//! The per-attempt timeout sits inside the breaker so that a slow attempt counts as a failure.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use palisade::breaker::BreakerHandle;
use palisade::key::GlobalKey;
use palisade::prelude::*;
use palisade::ratelimit::Mode;
use palisade::retry::TpsBudget;
use tower::{Service, ServiceBuilder, ServiceExt};

#[path = "common/flaky.rs"]
pub(crate) mod flaky;
pub(crate) use flaky::{Hits, upstream};

/// The client stack around `reqwest::Client`, and its breaker's handle.
pub(crate) fn client() -> Result<
    (
        impl Service<reqwest::Request, Response = reqwest::Response, Error = BoxError> + Clone,
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
        .service(reqwest::Client::new());
    Ok((svc, handle))
}

fn get_req(base: &str, path: &str) -> reqwest::Request {
    reqwest::Request::new(
        reqwest::Method::GET,
        format!("{base}{path}").parse().expect("a valid URL"),
    )
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
