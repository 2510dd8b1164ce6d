//! The proof: Palisade's own server and client stacks under injected latency and
//! errors keep their invariants. Timeout: no request outlives the total timeout by more than
//! 10 ms. Bulkhead: the upstream never sees more than the limit in flight. Breaker: opens
//! within its window. Retry: never beyond the budget. Idempotency: a keyed POST executes
//! once. All on paused time.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use palisade_breaker::{BreakerEvent, CircuitBreakerLayer, SlidingWindow, State};
use palisade_bulkhead::BulkheadLayer;
use palisade_chaos::{FaultLayer, Latency};
use palisade_core::{BulkheadFull, CircuitOpen, Elapsed, HandleRejectionsLayer};
use palisade_idempotency::{IdempotencyLayer, MemoryStore};
use palisade_retry::{Backoff, RetryEvent, RetryLayer, TpsBudget};
use palisade_test::events::EventRecorder;
use palisade_test::scripted::{ScriptedService, delay, ms};
use palisade_timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn timeout_and_bulkhead_hold_under_injected_latency_and_errors() {
    const LIMIT: usize = 4;
    let total = ms(500);
    let upstream = ScriptedService::otherwise(delay(ms(50)).then_ok());
    let faults = FaultLayer::new()
        .seed(9)
        .delay(Latency::uniform(ms(0), Duration::from_secs(2)), 0.5)
        .error(0.1);
    let handle = faults.handle();
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(total))
        .layer(
            BulkheadLayer::builder()
                .max_concurrent(LIMIT)
                .release_on_response()
                .build()
                .unwrap(),
        )
        .layer(faults)
        .service(upstream.clone());

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let svc = stack.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let res = svc.oneshot(http::Request::new(())).await;
            (started.elapsed(), res)
        }));
        tokio::time::sleep(ms(10)).await;
    }
    let (mut ok, mut elapsed, mut full, mut failed) = (0, 0, 0, 0);
    for t in tasks {
        let (took, res) = t.await.unwrap();
        assert!(took <= total + ms(10), "a request took {took:?}");
        match res {
            Ok(res) => {
                assert_eq!(res.status(), 200);
                ok += 1;
            }
            Err(e) if e.is::<Elapsed>() => elapsed += 1,
            Err(e) if e.is::<BulkheadFull>() => full += 1,
            Err(_) => failed += 1,
        }
    }
    assert!(
        upstream.max_in_flight() <= LIMIT,
        "{}",
        upstream.max_in_flight()
    );
    // The run exercised every path: the faults fired, the timeout fired, the bulkhead shed.
    let stats = handle.stats();
    assert!(stats.delayed > 0 && stats.failed > 0, "{stats:?}");
    assert!(
        ok > 0 && elapsed > 0 && full > 0 && failed > 0,
        "{ok} {elapsed} {full} {failed}"
    );
    assert_eq!(ok + elapsed + full + failed, 200);
}

/// Counts the calls that reach the service below it.
fn counted<S, R>(
    calls: Arc<AtomicUsize>,
    svc: S,
) -> impl Service<R, Response = S::Response, Error = S::Error, Future = S::Future> + Clone
where
    S: Service<R> + Clone,
{
    ServiceBuilder::new()
        .map_request(move |r| {
            calls.fetch_add(1, Ordering::SeqCst);
            r
        })
        .service(svc)
}

fn get() -> http::Request<Full<Bytes>> {
    http::Request::new(Full::new(Bytes::new()))
}

/// Server stack (breaker above the handler): ten good calls, then every call aborted with
/// 503 from t = 1 s. A count window of 10 at 50 % must open after at most 10 calls of the
/// burst reach it, and then no call reaches the handler.
#[tokio::test(start_paused = true)]
async fn breaker_opens_within_its_window_under_an_error_burst() {
    const WINDOW: u32 = 10;
    let start = Instant::now();
    let upstream = ScriptedService::new();
    let reached = Arc::new(AtomicUsize::new(0));
    let opened_at_call = Arc::new(AtomicUsize::new(usize::MAX));
    let (r, o) = (reached.clone(), opened_at_call.clone());
    let breaker = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(WINDOW))
        .minimum_calls(WINDOW)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(60))
        .on_event(move |e| {
            if matches!(
                e,
                BreakerEvent::StateChanged {
                    to: State::Open,
                    ..
                }
            ) {
                o.store(r.load(Ordering::SeqCst), Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let handle = breaker.handle();
    let faults = FaultLayer::new()
        .seed(3)
        .between(
            start + Duration::from_secs(1),
            start + Duration::from_secs(3600),
        )
        .abort(http::StatusCode::SERVICE_UNAVAILABLE, 1.0)
        .delay(Latency::uniform(ms(0), ms(20)), 0.5);
    let inner = counted(
        reached.clone(),
        ServiceBuilder::new()
            .layer(faults)
            .service(upstream.clone()),
    );
    let stack = ServiceBuilder::new().layer(breaker).service(inner);

    let (mut ok, mut unavailable, mut open) = (0, 0, 0);
    for i in 0..60u64 {
        tokio::time::sleep_until(start + ms(100 * i)).await;
        match stack.clone().oneshot(get()).await {
            Ok(res) if res.status() == 200 => ok += 1,
            Ok(res) => {
                assert_eq!(res.status(), 503);
                unavailable += 1;
            }
            Err(e) => {
                assert!(e.is::<CircuitOpen>(), "{e}");
                open += 1;
            }
        }
    }
    assert_eq!(handle.state(), State::Open);
    assert_eq!(ok, 10, "the ten calls before the burst pass");
    let burst_calls_before_open = opened_at_call.load(Ordering::SeqCst) - 10;
    assert!(
        (1..=WINDOW as usize).contains(&burst_calls_before_open),
        "opened after {burst_calls_before_open} failing calls"
    );
    assert_eq!(unavailable, burst_calls_before_open);
    assert_eq!(open, 50 - unavailable);
    // Nothing reached the handler once the burst began, nor the fault layer once open.
    assert_eq!(upstream.calls(), 10);
    assert_eq!(reached.load(Ordering::SeqCst), 10 + unavailable);
}

/// Client stack (total timeout → retry with a budget → breaker → per-attempt timeout →
/// faults → upstream) under 50 % injected errors and 20 % +300 ms latency: no request
/// outlives the total timeout by more than 10 ms, and the retries stay within the budget
/// (`TpsBudget(10 s, 1/s, 20 %)`: a request deposits 1, a retry costs 5, the reserve is
/// 50, so retries ≤ (N + 50) / 5 while the run stays inside one 10 s window).
#[tokio::test(start_paused = true)]
async fn client_stack_keeps_its_total_timeout_and_retry_budget() {
    const N: usize = 200;
    let total = ms(400);
    let upstream = ScriptedService::otherwise(delay(ms(20)).then_ok());
    let attempts = Arc::new(AtomicUsize::new(0));
    let faults = FaultLayer::new()
        .seed(11)
        .error(0.5)
        .delay(Latency::fixed(ms(300)), 0.2);
    let fault_handle = faults.handle();
    let retry_events = EventRecorder::new();
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(total))
        .layer(
            RetryLayer::new()
                .max_attempts(4)
                .backoff(Backoff::full_jitter(ms(5), ms(40)))
                .seed(5)
                .budget(TpsBudget::new(Duration::from_secs(10), 1, 0.2))
                .on_event(retry_events.on::<RetryEvent>()),
        )
        .layer(
            CircuitBreakerLayer::builder()
                .window(SlidingWindow::Count(100))
                .minimum_calls(100)
                .failure_rate_threshold(95.0)
                .build()
                .unwrap(),
        )
        .layer(TimeoutLayer::new(ms(100)))
        .service(counted(
            attempts.clone(),
            ServiceBuilder::new()
                .layer(faults)
                .service(upstream.clone()),
        ));

    let mut tasks = Vec::new();
    for _ in 0..N {
        let svc = stack.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let res = svc.oneshot(get()).await;
            (started.elapsed(), res.map(|r| r.status()))
        }));
        tokio::time::sleep(ms(5)).await;
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (took, res) = t.await.unwrap();
        assert!(took <= total + ms(10), "a request took {took:?}");
        match res {
            Ok(s) => {
                assert_eq!(s, 200);
                ok += 1;
            }
            Err(_) => failed += 1,
        }
    }
    let retries = attempts.load(Ordering::SeqCst) - N;
    assert!(
        retries <= (N + 50) / 5,
        "{retries} retries for {N} requests"
    );
    // The run exercised the budget: faults fired, retries happened, some were refused.
    assert!(fault_handle.stats().failed > 0 && fault_handle.stats().delayed > 0);
    assert!(
        retries > 0 && ok > 0 && failed > 0,
        "{retries} {ok} {failed}"
    );
    let refused = retry_events
        .events::<RetryEvent>()
        .iter()
        .filter(|e| matches!(e, RetryEvent::BudgetExhausted { .. }))
        .count();
    assert!(refused > 0, "the budget never refused a retry");
}

/// Client retrying POSTs (unsafe methods allowed, per-attempt timeout 100 ms, 30 % of sends
/// failing before they leave) → server with idempotency above injected latency (half of the
/// calls +0–300 ms) → a handler counting executions per key. However the attempts race,
/// every key executes once: during the run, and again after a clean pass over every key.
#[tokio::test(start_paused = true)]
async fn idempotent_posts_execute_once_under_retries_and_latency() {
    const N: usize = 50;
    let executions: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let e = executions.clone();
    let handler = tower::service_fn(move |req: http::Request<_>| {
        let key = req.headers()["idempotency-key"]
            .to_str()
            .unwrap()
            .to_owned();
        *e.lock().unwrap().entry(key).or_default() += 1;
        async move {
            tokio::time::sleep(ms(20)).await;
            Ok::<_, Infallible>(
                http::Response::builder()
                    .status(201)
                    .body(Full::new(Bytes::from_static(b"created")))
                    .unwrap(),
            )
        }
    });
    let server = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(
            IdempotencyLayer::new(MemoryStore::new())
                .global_scope()
                .wait_in_flight(ms(500)),
        )
        .layer(
            FaultLayer::new()
                .seed(21)
                .delay(Latency::uniform(ms(0), ms(300)), 0.5),
        )
        .service(handler);
    let network = FaultLayer::new().seed(22).error(0.3);
    let network_handle = network.handle();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let client = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .max_attempts(5)
                .backoff(Backoff::full_jitter(ms(10), ms(50)))
                .no_budget()
                .retry_unsafe_methods(true)
                .per_attempt_timeout(ms(100)),
        )
        .map_request(move |r| {
            a.fetch_add(1, Ordering::SeqCst);
            r
        })
        .layer(network)
        .service(server);
    let post = |i: usize| {
        http::Request::post("/orders")
            .header("idempotency-key", format!("\"k{i}\""))
            .body(Full::new(Bytes::from(format!("order {i}"))))
            .unwrap()
    };

    let mut tasks = Vec::new();
    for i in 0..N {
        let svc = client.clone();
        tasks.push(tokio::spawn(async move { svc.oneshot(post(i)).await }));
        tokio::time::sleep(ms(7)).await;
    }
    for t in tasks {
        let _ = t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // detached handlers finish
    assert!(
        executions.lock().unwrap().values().all(|&n| n == 1),
        "{:?}",
        executions.lock().unwrap()
    );
    assert!(attempts.load(Ordering::SeqCst) > N, "no retry happened");
    assert!(network_handle.stats().failed > 0);

    // A clean pass: every key answers 201, and none executes again.
    network_handle.disable();
    for i in 0..N {
        let res = client.clone().oneshot(post(i)).await.unwrap();
        assert_eq!(res.status(), 201, "key {i}");
    }
    let executions = executions.lock().unwrap();
    assert_eq!(executions.len(), N);
    assert!(executions.values().all(|&n| n == 1), "{executions:?}");
}
