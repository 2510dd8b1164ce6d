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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use palisade::breaker::{BreakerEvent, BreakerHandle};
use palisade::bulkhead::BulkheadHandle;
use palisade::key::HeaderKey;
use palisade::metrics::{MetricsLayer, PrometheusHandle};
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
/// Most upstream calls at once; more are shed with 503.
const MAX_CONCURRENT: usize = 12;
/// The per-request budget the server enforces.
const TIMEOUT: Duration = Duration::from_millis(200);

/// Whether the upstream is in an incident (90% errors), set by the load driver.
static INCIDENT: AtomicBool = AtomicBool::new(false);

/// The flaky upstream: latency mostly 5–80 ms with a slow tail, ~8% errors (90% during an
/// incident).
async fn flaky() -> (StatusCode, &'static str) {
    let error_rate = if INCIDENT.load(Ordering::Relaxed) {
        0.9
    } else {
        0.08
    };
    let (delay_ms, fail) = {
        let mut rng = rand::rng();
        let slow = rng.random_bool(0.12);
        let delay = if slow {
            rng.random_range(150..600)
        } else {
            rng.random_range(5..80)
        };
        (delay, rng.random_bool(error_rate))
    };
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    if fail {
        (StatusCode::INTERNAL_SERVER_ERROR, "upstream failed")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// Charges made by `/pay`: the idempotency layer keeps retried POSTs from charging twice.
static CHARGES: AtomicUsize = AtomicUsize::new(0);

async fn pay() -> (StatusCode, String) {
    let n = CHARGES.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::CREATED, format!("{{\"charge\":\"ch_{n}\"}}"))
}

/// The circuit breaker in front of the upstream, printing each state change.
fn breaker() -> CircuitBreakerLayer {
    let started = Instant::now();
    CircuitBreakerLayer::builder()
        .name("upstream")
        .window(SlidingWindow::Count(50))
        .minimum_calls(20)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_millis(800))
        .permitted_in_half_open(5)
        .on_event(move |e| {
            if let BreakerEvent::StateChanged { from, to, .. } = e {
                println!(
                    "        [{:>5.2}s] breaker {from} → {to}",
                    started.elapsed().as_secs_f64()
                );
            }
        })
        .build()
        .expect("valid breaker config")
}

/// `/livez`, `/readyz`, `/health`: the breaker's state and the bulkhead's saturation.
fn health(breaker: BreakerHandle, bulkhead: BulkheadHandle) -> Router {
    use palisade::health::{
        CircuitState, HealthCheck, HealthRegistry, breaker_check, saturation_check,
    };
    let registry = HealthRegistry::new();
    registry
        .register(HealthCheck::new(
            "upstream-breaker:state",
            breaker_check(move || match breaker.state() {
                palisade::breaker::State::Open | palisade::breaker::State::ForcedOpen => {
                    CircuitState::Open
                }
                palisade::breaker::State::HalfOpen => CircuitState::HalfOpen,
                _ => CircuitState::Closed,
            }),
        ))
        .and_then(|r| {
            r.register(HealthCheck::new(
                "upstream-bulkhead:utilization",
                saturation_check(move || (bulkhead.in_flight(), bulkhead.limit()), 0.8, 1.0)?,
            ))
        })
        .expect("valid health checks");
    registry.router()
}

/// The Palisade stack: rejections → responses, then each pattern layer.
fn app(prometheus: PrometheusHandle) -> Router {
    let per_client = Quota::per_second("per-client", PER_CLIENT_PER_SEC)
        .expect("valid quota")
        .burst(PER_CLIENT_PER_SEC / 2);
    let breaker = breaker();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(MAX_CONCURRENT)
        .build()
        .expect("valid bulkhead config");
    let health = health(breaker.handle(), bulkhead.handle());
    // Live gauges for /metrics: the bulkhead's occupancy and the breaker's state.
    let every = Duration::from_millis(250);
    palisade::metrics::watch_bulkhead("upstream", bulkhead.handle(), every);
    palisade::metrics::watch_breaker(breaker.handle(), every);
    let stack = ServiceBuilder::new()
        .handle_rejections()
        .layer(MetricsLayer::new())
        .rate_limit_with(RateLimitLayer::new(
            HeaderKey::new(HeaderName::from_static("x-client")),
            per_client,
        ))
        .breaker_with(breaker)
        .bulkhead_with(bulkhead)
        .timeout_with(TimeoutLayer::new(TIMEOUT));
    let pay_stack = ServiceBuilder::new()
        .handle_rejections()
        // The handler below still gets axum's `Body` (see `idempotency_with`). Keys are
        // scoped by the caller's API key, so customers never share a record.
        .idempotency_with(
            IdempotencyLayer::new(MemoryStore::new())
                .require_key(true)
                .scope(HeaderKey::new(HeaderName::from_static("x-api-key"))),
        );
    Router::new()
        .route("/work", get(flaky).route_layer(stack))
        .route("/pay", post(pay).route_layer(pay_stack))
        .merge(health)
        .merge(palisade::metrics::prometheus_router(prometheus))
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
const COLUMNS: [&str; 7] = [
    "ok",
    "timed out",
    "upstream error",
    "circuit open",
    "bulkhead full",
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

/// Canary: v2 (bad: half its answers are 500s) starts at 10% next to a healthy v1; the
/// analysis compares error rates each interval and rolls v2 back. Returns what happened.
async fn canary_phase() -> Result<String, BoxError> {
    use palisade::traffic::{CanaryConfig, CanaryController, Split, Tick, TrafficEvent};
    use tower::ServiceExt;

    fn version(
        bad: bool,
    ) -> impl tower::Service<
        http::Request<()>,
        Response = http::Response<()>,
        Error = std::convert::Infallible,
        Future = std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>,
    > + Clone {
        tower::service_fn(move |_req: http::Request<()>| {
            let fail = bad && rand::rng().random_bool(0.5);
            let status = if fail { 500 } else { 200 };
            std::future::ready(Ok(http::Response::builder()
                .status(status)
                .body(())
                .expect("valid")))
        })
    }
    let (split, handle) = Split::builder()
        .arm("v1", version(false))
        .arm("v2", version(true))
        .on_event(|e| {
            if let TrafficEvent::RolledBack { .. } = e {
                println!("        [canary] v2 rolled back: {e:?}");
            }
        })
        .build()?;
    let mut config = CanaryConfig::default();
    config.steps = vec![10, 50, 100];
    config.min_samples = 20;
    config.max_error_rate_increase = 0.05;
    let mut controller = CanaryController::start(handle.clone(), "v1", "v2", config)?;
    let mut served = 0;
    for interval in 1..=5 {
        for _ in 0..200 {
            split.clone().oneshot(http::Request::new(())).await?;
            served += 1;
        }
        let tick = controller.tick();
        println!(
            "        [canary] interval {interval}: {tick:?}, weights v1/v2 = {:?}",
            handle.weights()
        );
        if matches!(tick, Tick::RolledBack { .. }) {
            return Ok(format!(
                "bad v2 rolled back to 0% after {served} requests; v1 serves 100%"
            ));
        }
    }
    Ok(format!("v2 weights now {:?}", handle.weights()))
}

/// A retrying client (hyper-util behind `RetryLayer` with a budget): returns (successes,
/// calls, attempts).
async fn retry_phase(addr: SocketAddr) -> Result<(usize, usize, u32), BoxError> {
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use palisade::retry::{RetryBody, RetryEvent, TpsBudget};
    use tower::ServiceExt;

    static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
    let retry = RetryLayer::new()
        .max_attempts(3)
        .backoff(Backoff::full_jitter(
            Duration::from_millis(20),
            Duration::from_secs(2),
        ))
        .budget(TpsBudget::new(Duration::from_secs(10), 5, 0.2))
        .on_event(|e| {
            if let RetryEvent::Attempt { .. } = e {
                ATTEMPTS.fetch_add(1, Ordering::Relaxed);
            }
        });
    let client = ServiceBuilder::new()
        .retry_with(retry)
        .service(Client::builder(TokioExecutor::new()).build_http::<RetryBody<Empty<Bytes>>>());
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..10 {
                let req = http::Request::get(format!("http://{addr}/work"))
                    .header("x-client", format!("retrying-{worker}"))
                    .body(Empty::<Bytes>::new())
                    .expect("valid request");
                if matches!(client.clone().oneshot(req).await, Ok(res) if res.status() == 200) {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await?;
    }
    let retries = ATTEMPTS.load(Ordering::Relaxed) as u32;
    Ok((ok, 160, 160 + retries))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let secs: u64 = std::env::args()
        .skip_while(|a| a != "--secs")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);

    // Install the Prometheus recorder before serving, so every route records into it.
    let prometheus = palisade::metrics::install_prometheus()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(listener, app(prometheus))
            .await
            .expect("server runs");
    });
    println!("Palisade demo: server on http://{addr}/work");
    println!(
        "  while it runs: http://{addr}/metrics (Prometheus) and http://{addr}/health (health+json)"
    );
    println!(
        "stack = handle_rejections → rate limit ({PER_CLIENT_PER_SEC}/s per x-client) → breaker → bulkhead ({MAX_CONCURRENT}) → timeout({TIMEOUT:?}) → flaky upstream"
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
                    // Two layers answer 503; the problem+json detail says which.
                    Ok(res) if res.status() == 503 => match res.text().await {
                        Ok(body) if body.contains("bulkhead") => "bulkhead full",
                        _ => "circuit open",
                    },
                    Ok(res) => outcome(res.status().as_u16()),
                    Err(_) => "other",
                };
                *counts.lock().unwrap().entry(key).or_default() += 1;
                if matches!(key, "rate limited" | "circuit open" | "bulkhead full") {
                    // A polite client pauses (a real one would honour Retry-After).
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }));
    }

    let started = Instant::now();
    // An upstream incident from 30% to 60% of the run: the breaker opens, then recovers.
    let (incident_from, incident_to) = (secs * 3 / 10, (secs * 6 / 10).max(secs * 3 / 10 + 1));
    for second in 1..=secs {
        tokio::time::sleep_until(started + Duration::from_secs(second)).await;
        println!("t={second:>2}s  {}", render(&counts.lock().unwrap()));
        if second == incident_from {
            INCIDENT.store(true, Ordering::Relaxed);
            println!("        [{second:>5}s] upstream incident starts: 90% errors");
        }
        if second == incident_to {
            INCIDENT.store(false, Ordering::Relaxed);
            println!("        [{second:>5}s] upstream incident ends");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }

    // Canary: a bad v2 is rolled back automatically.
    let canary = canary_phase().await?;

    // Retry: a client behind RetryLayer (with a budget) makes 160 GETs; 504s and 503s are
    // retried with backoff, so far fewer failures reach the caller.
    let (retried_ok, retried_total, attempts) = retry_phase(addr).await?;

    // Idempotency: a client pays once, loses the response twice and retries with the same key.
    let key = "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"";
    let mut replays = 0;
    for _attempt in 0..3 {
        let res = client
            .post(format!("http://{addr}/pay"))
            .header("x-api-key", "demo-customer")
            .header("idempotency-key", key)
            .body("amount=1000")
            .send()
            .await?;
        if res.headers().contains_key("idempotent-replayed") {
            replays += 1;
        }
    }
    let health = client.get(format!("http://{addr}/health")).send().await?;
    let health_status = health.status();
    let health_body = health.text().await?;
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
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
    println!("\nWhat the layers did:");
    println!("  timeout      slow upstream calls were cut at {TIMEOUT:?}: 504 + problem+json");
    println!(
        "  rate limit   the noisy client's excess: 429 + Retry-After + RateLimit headers; others unaffected"
    );
    println!(
        "  breaker      during the incident it opened: fast 503 + Retry-After, then probed and closed"
    );
    println!(
        "  retry        {retried_ok}/{retried_total} GETs succeeded through the retrying client ({attempts} attempts, budgeted)"
    );
    println!(
        "  bulkhead     at most {MAX_CONCURRENT} upstream calls at once; the excess was shed at once with 503"
    );
    println!("  canary       {canary}");
    println!(
        "  health       GET /health → {health_status} {}",
        health_body.chars().take(90).collect::<String>()
    );
    println!(
        "  metrics      GET /metrics → {} palisade_requests_total series, e.g. {}",
        metrics
            .lines()
            .filter(|l| l.starts_with("palisade_requests_total{"))
            .count(),
        metrics
            .lines()
            .find(|l| l.starts_with("palisade_requests_total{"))
            .unwrap_or("-")
    );
    let gauge = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or("-")
            .to_owned()
    };
    println!(
        "               live gauges: {} · {}",
        gauge("palisade_breaker_state{"),
        gauge("palisade_bulkhead_in_flight{")
    );
    println!(
        "  idempotency  POST /pay sent 3 times with one Idempotency-Key: {} charge(s), {replays} replay(s)",
        CHARGES.load(Ordering::SeqCst)
    );
    Ok(())
}
