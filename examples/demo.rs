//! Palisade demo: an axum server with the Palisade stack in front of a deliberately flaky
//! in-process upstream, loaded for ~10 s by a client in the same process. It prints progress
//! every second and a table of outcomes at the end, then exits.
//!
//! ```text
//! cargo run --example demo              # 10 s
//! cargo run --example demo -- --secs 3  # shorter
//! ```
//!
//! No external services: everything runs on 127.0.0.1 with an ephemeral port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::routing::get;
use palisade::key::HeaderKey;
use palisade::prelude::*;
use rand::Rng;
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Client concurrency.
const WORKERS: usize = 24;
/// Workers that share one client id (`x-client: noisy`) and so one rate limit.
const NOISY_WORKERS: usize = 8;
/// Per-client rate limit.
const PER_CLIENT_PER_SEC: u32 = 40;
/// The per-request budget the server enforces.
const TIMEOUT: Duration = Duration::from_millis(200);

/// The flaky upstream: latency mostly 5–80 ms with a slow tail, ~8% errors.
async fn flaky() -> (StatusCode, &'static str) {
    let (delay_ms, fail) = {
        let mut rng = rand::rng();
        let slow = rng.random_bool(0.12);
        let delay = if slow {
            rng.random_range(150..600)
        } else {
            rng.random_range(5..80)
        };
        (delay, rng.random_bool(0.08))
    };
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    if fail {
        (StatusCode::INTERNAL_SERVER_ERROR, "upstream failed")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// The Palisade stack: rejections → responses, then each pattern layer.
fn app() -> Router {
    let per_client = Quota::per_second("per-client", PER_CLIENT_PER_SEC)
        .expect("valid quota")
        .burst(PER_CLIENT_PER_SEC / 2);
    let stack = ServiceBuilder::new()
        .handle_rejections()
        .rate_limit_with(RateLimitLayer::new(
            HeaderKey::new(HeaderName::from_static("x-client")),
            per_client,
        ))
        .timeout_with(TimeoutLayer::new(TIMEOUT));
    Router::new().route("/work", get(flaky)).layer(stack)
}

/// Names an outcome from the response the client saw.
fn outcome(status: u16) -> &'static str {
    match status {
        200 => "ok",
        504 => "timed out",
        500 => "upstream error",
        503 => "unavailable",
        429 => "rate limited",
        _ => "other",
    }
}

/// Columns in display order; unseen ones are left out.
const COLUMNS: [&str; 6] = [
    "ok",
    "timed out",
    "upstream error",
    "unavailable",
    "rate limited",
    "other",
];

fn render(counts: &BTreeMap<&'static str, u64>) -> String {
    COLUMNS
        .iter()
        .filter_map(|c| counts.get(c).map(|n| format!("{c} {n:>5}")))
        .collect::<Vec<_>>()
        .join("  ")
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let secs: u64 = std::env::args()
        .skip_while(|a| a != "--secs")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(listener, app()).await.expect("server runs");
    });
    println!("Palisade demo: server on http://{addr}/work");
    println!(
        "stack = handle_rejections → rate limit ({PER_CLIENT_PER_SEC}/s per x-client) → timeout({TIMEOUT:?}) → flaky upstream"
    );
    println!("{NOISY_WORKERS} of the clients share the id `noisy`; the others have one id each.");
    println!("Driving load with {WORKERS} concurrent clients for {secs} s …\n");

    let counts: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/work");
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (client, url, counts, stop) =
            (client.clone(), url.clone(), counts.clone(), stop.clone());
        let id = if worker < NOISY_WORKERS {
            "noisy".to_owned()
        } else {
            format!("client-{worker}")
        };
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let key = match client.get(&url).header("x-client", &id).send().await {
                    Ok(res) => outcome(res.status().as_u16()),
                    Err(_) => "other",
                };
                *counts.lock().unwrap().entry(key).or_default() += 1;
                if key == "rate limited" {
                    // A polite client pauses (a real one would honour Retry-After).
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }));
    }

    let started = Instant::now();
    for second in 1..=secs {
        tokio::time::sleep_until(started + Duration::from_secs(second)).await;
        println!("t={second:>2}s  {}", render(&counts.lock().unwrap()));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    server.abort();

    let counts = counts.lock().unwrap().clone();
    let total: u64 = counts.values().sum();
    println!(
        "\nOutcomes after {secs} s ({total} requests, {:.0} req/s):",
        total as f64 / secs as f64
    );
    println!("  {:<16} {:>8} {:>7}", "outcome", "count", "share");
    for c in COLUMNS {
        if let Some(n) = counts.get(c) {
            println!(
                "  {c:<16} {n:>8} {:>6.1}%",
                *n as f64 * 100.0 / total.max(1) as f64
            );
        }
    }
    println!(
        "\nSlow upstream calls were cut at {TIMEOUT:?} (504, problem+json). The noisy client's excess got 429 with"
    );
    println!(
        "Retry-After and RateLimit headers, while the other clients stayed under their own limits."
    );
    Ok(())
}
