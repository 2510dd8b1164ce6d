//! What the client examples share (not an example itself): the local flaky upstream they
//! call, the client stack, and the calls they make.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use palisade::BoxError;
use palisade::breaker::{BreakerHandle, CircuitBreakerLayer};
use palisade::key::GlobalKey;
use palisade::prelude::*;
use palisade::ratelimit::RateLimitMode;
use palisade::request::ResponseParts;
use palisade::retry::TpsBudget;
use tower::layer::util::{Identity, Stack};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Counts the upstream's handler executions per route.
#[derive(Debug, Default)]
pub(crate) struct Hits {
    pub(crate) flaky: AtomicUsize,
    pub(crate) down: AtomicUsize,
}

/// The upstream: `/fast` echoes the `grpc-timeout` it saw, `/slow` takes 2 s, `/flaky`
/// fails twice with 503 and then succeeds (and so on), `/down` always answers 503.
pub(crate) fn upstream(hits: Arc<Hits>) -> Router {
    let (h1, h2) = (hits.clone(), hits);
    Router::new()
        .route(
            "/fast",
            get(|h: HeaderMap| async move {
                let seen = h
                    .get("grpc-timeout")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                ([("x-seen-grpc-timeout", seen)], "ok")
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }),
        )
        .route(
            "/flaky",
            get(move || async move {
                match h1.flaky.fetch_add(1, Ordering::SeqCst) % 3 {
                    2 => (StatusCode::OK, "ok"),
                    _ => (StatusCode::SERVICE_UNAVAILABLE, "try again"),
                }
            }),
        )
        .route(
            "/down",
            get(move || async move {
                h2.down.fetch_add(1, Ordering::SeqCst);
                (StatusCode::SERVICE_UNAVAILABLE, "down")
            }),
        )
}

/// The client stack's layers, outermost first.
pub(crate) type Layers = Stack<
    TimeoutLayer,
    Stack<
        CircuitBreakerLayer,
        Stack<RateLimitLayer<GlobalKey>, Stack<RetryLayer, Stack<TimeoutLayer, Identity>>>,
    >,
>;

/// The client stack, outermost first: a 2 s deadline for the whole call; retry ×3 with
/// full jitter and a retry budget; a wait-mode rate limit (100 attempts/s); a breaker; a
/// 300 ms per-attempt timeout in outbound mode. Returns the breaker's handle too.
pub(crate) fn layers() -> Result<(ServiceBuilder<Layers>, BreakerHandle), ConfigError> {
    let breaker = CircuitBreakerLayer::builder()
        .name("upstream")
        .window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(5))
        .build()?;
    let handle = breaker.handle();
    let layers = ServiceBuilder::new()
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
                .mode(RateLimitMode::Wait)
                .max_wait(Duration::from_secs(1)),
        )
        .breaker_with(breaker)
        .timeout_with(TimeoutLayer::new(Duration::from_millis(300)).outbound(true));
    Ok((layers, handle))
}

/// Serves the upstream on 127.0.0.1, calls each route through `client` (`get` builds a GET
/// for a URL) and prints what happened.
pub(crate) async fn run<S, Q>(
    client: S,
    breaker: &BreakerHandle,
    get: impl Fn(&str) -> Q,
) -> Result<(), BoxError>
where
    S: Service<Q, Error = BoxError> + Clone,
    S::Response: ResponseParts,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let hits = Arc::new(Hits::default());
    let app = upstream(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = |path: &str| format!("{base}{path}");

    let res = client.clone().oneshot(get(&url("/fast"))).await?;
    println!(
        "GET /fast  → {} (server saw grpc-timeout {})",
        res.status(),
        res.headers()["x-seen-grpc-timeout"].to_str()?
    );

    let res = client.clone().oneshot(get(&url("/flaky"))).await?;
    println!(
        "GET /flaky → {} after {} upstream calls (two 503s retried)",
        res.status(),
        hits.flaky.load(Ordering::SeqCst)
    );

    let Err(err) = client.clone().oneshot(get(&url("/slow"))).await else {
        return Err("/slow answered in time".into());
    };
    println!(
        "GET /slow  → error: {err} (each of 3 attempts timed out after 300 ms; is Elapsed: {})",
        err.is::<palisade::rejection::Elapsed>()
    );

    let res = client.clone().oneshot(get(&url("/down"))).await?;
    println!(
        "GET /down  → {} after {} upstream calls; breaker {:?}",
        res.status(),
        hits.down.load(Ordering::SeqCst),
        breaker.state()
    );
    let Err(err) = client.oneshot(get(&url("/down"))).await else {
        return Err("the breaker let /down through".into());
    };
    println!(
        "GET /down  → error: {err} (no call made: {} upstream calls)",
        hits.down.load(Ordering::SeqCst)
    );
    Ok(())
}
