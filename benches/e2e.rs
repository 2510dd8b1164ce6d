//! End-to-end: requests/s and p99 of a bare axum hello-world vs the same behind the Palisade
//! stack, both on 127.0.0.1, loaded by a small keep-alive hyper client in this process.
//!
//! ```text
//! cargo bench --bench e2e                  # 15 rotating rounds of 1 s per server
//! E2E_ROUNDS=30 E2E_SECS=2 E2E_CONNS=64 cargo bench --bench e2e
//! ```
//!
//! Many short rounds in rotating order, then each server's median round: a slow spell of the
//! machine then hits every server alike. (Three rounds of 5 s put the stack anywhere between
//! 0.67 and 1.02 of bare on one commit; six runs of fifteen rounds of 1 s, between 0.87 and
//! 0.96, median 0.92.)
//!
//! Server and load generator share the machine's cores, so absolute figures are modest; the
//! ratio is what matters (goal: the stack keeps ≥ 95 % of bare throughput).
//!
//! Wall-clock figures drift with whatever else runs on the machine. For a count that does
//! not, run a fixed number of requests against one server on one connection, on a
//! single-threaded runtime, under callgrind, and compare instruction totals (client and
//! server together). Two request counts cancel the start-up cost: per request =
//! (total at 6,000 − total at 2,000) / 4,000.
//!
//! ```text
//! cargo bench --bench e2e --no-run   # prints the binary's path
//! E2E_REQS=6000 E2E_ONLY=bare  valgrind --tool=callgrind target/release/deps/e2e-…
//! E2E_REQS=6000 E2E_ONLY=stack valgrind --tool=callgrind target/release/deps/e2e-…
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::HandleRejectionsLayer;
use palisade::key::GlobalKey;
use palisade::prelude::*;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bare() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

/// The full default server stack's layers, outermost first.
type Layers = Stack<
    palisade::timeout::TimeoutLayer,
    Stack<
        BulkheadLayer,
        Stack<
            CircuitBreakerLayer,
            Stack<RateLimitLayer<GlobalKey>, Stack<HandleRejectionsLayer, Identity>>,
        >,
    >,
>;

/// The full default server stack, sized so that nothing is refused under the load.
fn layers(ratelimit_headers: bool) -> ServiceBuilder<Layers> {
    ServiceBuilder::new()
        .handle_rejections()
        .rate_limit_with(
            RateLimitLayer::new(
                GlobalKey,
                Quota::per_second("global", 1_000_000).expect("valid quota"),
            )
            .response_headers(ratelimit_headers),
        )
        .breaker_with(
            CircuitBreakerLayer::builder()
                .build()
                .expect("valid breaker"),
        )
        .bulkhead_with(
            BulkheadLayer::builder()
                .max_concurrent(10_000)
                .build()
                .expect("valid bulkhead"),
        )
        .timeout_with(Duration::from_secs(5))
}

/// The stack applied with `Router::layer` (axum re-boxes the route, its future and the body).
fn stacked(ratelimit_headers: bool) -> Router {
    bare().layer(layers(ratelimit_headers))
}

/// Serves the router wrapped in the stack (no `Router::layer`).
async fn serve_wrapped(ratelimit_headers: bool) -> SocketAddr {
    // `axum::serve` wants axum's `Body`: one box per response, as `Router::layer` does.
    let svc = tower::ServiceBuilder::new()
        .map_response(|r: http::Response<_>| r.map(axum::body::Body::new))
        .layer(layers(ratelimit_headers))
        .service(bare());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, tower::make::Shared::new(svc))
            .await
            .unwrap();
    });
    addr
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

async fn load(client: &HttpClient, addr: SocketAddr, secs: u64, conns: u64) -> Run {
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, uri) = (client.clone(), uri.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(200_000);
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = client.get(uri.clone()).await.unwrap();
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Run {
        rps: all.len() as f64 / secs as f64,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// A fixed number of requests to one server (`E2E_ONLY=bare`, `stack`, `wrapped`, one layer
/// such as `timeout`, … see the match below), untimed: for
/// instruction counts under callgrind.
async fn fixed(reqs: u64, conns: u64) {
    let hello = bare;
    let rl = || RateLimitLayer::new(GlobalKey, Quota::per_second("global", 1_000_000).unwrap());
    let only = ServiceBuilder::new().handle_rejections();
    let which = std::env::var("E2E_ONLY").unwrap_or_default();
    let app = match which.as_str() {
        "stack" => stacked(true),
        "stack-noheaders" => stacked(false),
        // One layer at a time, to see what each costs.
        "rejections" => hello().layer(only),
        "ratelimit" => hello().layer(only.rate_limit_with(rl())),
        "ratelimit-noheaders" => hello().layer(only.rate_limit_with(rl().response_headers(false))),
        "breaker" => {
            hello().layer(only.breaker_with(CircuitBreakerLayer::builder().build().unwrap()))
        }
        "bulkhead" => hello().layer(
            only.bulkhead_with(
                BulkheadLayer::builder()
                    .max_concurrent(10_000)
                    .build()
                    .unwrap(),
            ),
        ),
        "timeout" => hello().layer(only.timeout_with(Duration::from_secs(5))),
        // `bare`, and the `wrapped` ones (served below around a bare router).
        _ => bare(),
    };
    let addr = match which.as_str() {
        "wrapped" => serve_wrapped(true).await,
        "wrapped-noheaders" => serve_wrapped(false).await,
        _ => serve(app).await,
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, uri) = (client.clone(), uri.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..reqs / conns {
                let res = client.get(uri.clone()).await.unwrap();
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn main() {
    if let Ok(reqs) = std::env::var("E2E_REQS") {
        // One thread: client and server take turns in the same order on every run, so the
        // instruction count is repeatable (no cross-thread wake-ups that vary run to run).
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(fixed(
                reqs.parse().expect("E2E_REQS: a number"),
                env("E2E_CONNS", 1),
            ));
        return;
    }
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(wall_clock());
}

/// Requests/s and latency of every server, in rotating rounds.
async fn wall_clock() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: run short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = if quick { 1 } else { env("E2E_SECS", 1) };
    let conns = env("E2E_CONNS", 32);
    let bare_addr = serve(bare()).await;
    let stacked_addr = serve(stacked(true)).await;
    let quiet_addr = serve(stacked(false)).await;
    let wrapped_addr = serve_wrapped(true).await;
    let wrapped_quiet_addr = serve_wrapped(false).await;
    // One pooled client per server, warmed up so every run reuses established connections.
    let servers = [
        ("bare axum", bare_addr),
        (
            "axum + handle_rejections + rate limit + breaker + bulkhead + timeout",
            stacked_addr,
        ),
        ("the same stack, RateLimit headers off", quiet_addr),
        (
            "the stack around the router (no `Router::layer`)",
            wrapped_addr,
        ),
        (
            "around the router, RateLimit headers off",
            wrapped_quiet_addr,
        ),
    ];
    let clients: Vec<HttpClient> = servers
        .iter()
        .map(|_| Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>())
        .collect();
    for ((_, addr), client) in servers.iter().zip(&clients) {
        load(client, *addr, 1, conns).await;
    }

    // Rotate the order every round so drift in machine load hits all alike; report each
    // server's median round.
    let rounds = if quick { 1 } else { env("E2E_ROUNDS", 15) };
    let mut runs: Vec<Vec<Run>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (k + round as usize) % servers.len();
            runs[i].push(load(&clients[i], servers[i].1, secs, conns).await);
        }
    }
    let median = |mut v: Vec<Run>| {
        v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        v.swap_remove(v.len() / 2)
    };
    let medians: Vec<Run> = runs.into_iter().map(median).collect();
    println!(
        "e2e: {conns} keep-alive connections, {rounds} rotating rounds of {secs} s, median round; server and client on 127.0.0.1"
    );
    println!("| server | req/s | p50 | p99 | vs bare |");
    println!("|---|---:|---:|---:|---:|");
    for ((name, _), r) in servers.iter().zip(&medians) {
        println!(
            "| {name} | {:.0} | {:?} | {:?} | {:.3} |",
            r.rps,
            r.p50,
            r.p99,
            r.rps / medians[0].rps
        );
    }
}
