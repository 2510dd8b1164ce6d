//! An axum router with a different Palisade stack per route, all infallible through
//! `handle_rejections` (no `HandleErrorLayer` code).
//!
//! ```text
//! cargo run --example axum --all-features                # serves on 127.0.0.1:3000
//! cargo run --example axum --all-features -- --selftest  # ephemeral port, calls itself, exits
//! ```
//!
//! | route | stack (outermost first) |
//! |---|---|
//! | `POST /pay` | rejections → rate limit (5/min per `x-api-key`) → timeout 2 s → idempotency (key required) |
//! | `GET /search` | rejections → breaker → timeout 300 ms → bulkhead (2 at once) |
//!
//! The timeout sits *inside* the breaker so that a timed-out call reaches the breaker as a
//! failure; outside it, the timeout would drop the breaker's future and the call would count
//! as cancelled (nothing).
//! | `GET /beta` | rejections → flag gate `beta` (404 while off) |

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use palisade::key::HeaderKey;
use palisade::prelude::*;
use palisade::toggle::{DynamicProvider, Flag, FlagGateLayer, FlagSet};
use tower::ServiceBuilder;

/// Counts `/pay` executions, to show retried payments run once.
pub(crate) static CHARGES: AtomicUsize = AtomicUsize::new(0);

async fn pay() -> (StatusCode, String) {
    let n = CHARGES.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::CREATED, format!("{{\"charge\":\"ch_{n}\"}}"))
}

#[derive(serde::Deserialize)]
struct SearchParams {
    delay_ms: Option<u64>,
}

async fn search(Query(p): Query<SearchParams>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(p.delay_ms.unwrap_or(0))).await;
    "results"
}

/// The router; `flags` decides whether `/beta` is open.
pub(crate) fn app(flags: DynamicProvider) -> Result<Router, ConfigError> {
    let pay_stack = ServiceBuilder::new()
        .handle_rejections()
        .rate_limit_with(RateLimitLayer::new(
            HeaderKey::new(HeaderName::from_static("x-api-key")),
            Quota::per_minute("pay", 5)?,
        ))
        // The timeout sits outside idempotency: when it fires, the caller gets 504 but the
        // payment, once started, runs to completion detached from the request and is stored,
        // so the client's retry replays it instead of charging again.
        .timeout_with(Duration::from_secs(2))
        // The handler below still gets axum's `Body` (see `idempotency_with`). Keys are
        // scoped by the caller's API key: two customers' "order-1" are two payments.
        .idempotency_with(
            IdempotencyLayer::new(MemoryStore::new())
                .require_key(true)
                .scope(HeaderKey::new(HeaderName::from_static("x-api-key"))),
        );
    let search_stack = ServiceBuilder::new()
        .handle_rejections()
        .breaker_with(
            CircuitBreakerLayer::builder()
                .window(SlidingWindow::Count(10))
                .minimum_calls(3)
                .wait_in_open(Duration::from_secs(30))
                .build()?,
        )
        .timeout_with(Duration::from_millis(300))
        .bulkhead_with(BulkheadLayer::builder().max_concurrent(2).build()?);
    let beta_stack = ServiceBuilder::new()
        .handle_rejections()
        .layer(FlagGateLayer::new(flags, "beta"));
    Ok(Router::new()
        .route("/pay", post(pay).route_layer(pay_stack))
        .route("/search", get(search).route_layer(search_stack))
        .route(
            "/beta",
            get(|| async { "welcome to beta" }).route_layer(beta_stack),
        ))
}

/// Flags with `beta` off.
pub(crate) fn flags() -> DynamicProvider {
    DynamicProvider::new(FlagSet::new().with("beta", Flag::boolean(false)))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let selftest = std::env::args().any(|a| a == "--selftest");
    let flags = flags();
    let listener = tokio::net::TcpListener::bind(if selftest {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    })
    .await?;
    let addr = listener.local_addr()?;
    let app = app(flags.clone())?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("Serving on http://{addr}: POST /pay, GET /search, GET /beta");
    if !selftest {
        server.await??;
        return Ok(());
    }
    let c = reqwest::Client::new();
    let pay = |key: &'static str| {
        c.post(format!("http://{addr}/pay"))
            .header("x-api-key", "demo")
            .header("idempotency-key", key)
            .send()
    };
    let res = pay("\"order-1\"").await?;
    println!(
        "POST /pay            → {} ratelimit: {:?}",
        res.status(),
        res.headers().get("ratelimit")
    );
    let res = pay("\"order-1\"").await?;
    println!(
        "POST /pay (retry)    → {} idempotent-replayed: {:?}",
        res.status(),
        res.headers().get("idempotent-replayed")
    );
    let res = c
        .get(format!("http://{addr}/search?delay_ms=1000"))
        .send()
        .await?;
    println!("GET /search (slow)   → {}", res.status());
    let res = c.get(format!("http://{addr}/beta")).send().await?;
    println!("GET /beta (flag off) → {}", res.status());
    flags.set(FlagSet::new().with("beta", Flag::boolean(true)));
    let res = c.get(format!("http://{addr}/beta")).send().await?;
    println!("GET /beta (flag on)  → {}", res.status());
    println!("charges: {}", CHARGES.load(Ordering::SeqCst));
    server.abort();
    Ok(())
}
