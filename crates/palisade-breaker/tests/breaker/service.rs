//! Behaviour of the circuit breaker through its Tower service.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use palisade_breaker::{
    BreakerConfig, BreakerEvent, CircuitBreakerLayer, KeyedCircuitBreakerLayer, SlidingWindow,
    State,
};
use palisade_core::key::key_fn;
use palisade_core::{BoxError, CircuitOpen, ErrorsAsFailures, HandleRejectionsLayer, KeyError};
use palisade_test::scripted::{delay, error, status};
use palisade_test::{EventRecorder, ScriptedService, assert_events};
use tokio::sync::Notify;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

const S: Duration = Duration::from_secs(1);

/// The reference test settings (Resilience4j semantics): COUNT 10, minCalls 5, failure 50%,
/// slow 50% @ 2 s, permitted 3, wait 60 s.
fn specs_layer() -> CircuitBreakerLayer<ErrorsAsFailures> {
    CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(10))
        .minimum_calls(5)
        .failure_rate_threshold(50.0)
        .slow_calls(50.0, 2 * S)
        .wait_in_open(60 * S)
        .permitted_in_half_open(3)
        .classifier(ErrorsAsFailures)
        .build()
        .unwrap()
}

/// The recorded `StateChanged` events as `(from, to)`.
fn transitions(events: &EventRecorder) -> Vec<(State, State)> {
    events
        .events::<BreakerEvent>()
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::StateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// A service answering Ok(()) or Err after `delay`, per request.
async fn svc_fn(req: (bool, Duration)) -> Result<(), BoxError> {
    tokio::time::sleep(req.1).await;
    if req.0 { Err("boom".into()) } else { Ok(()) }
}

#[tokio::test(start_paused = true)]
async fn cb5_open_rejects_without_calling_and_cb6_probes_after_wait() {
    let layer = specs_layer();
    let h = layer.handle();
    // Five failures, then successes.
    let upstream = ScriptedService::new().then(error("boom").times(5));
    let svc = layer.layer(upstream.clone());
    let get = || Request::new(());
    for _ in 0..5 {
        assert!(svc.clone().oneshot(get()).await.is_err());
    }
    assert_eq!(h.state(), State::Open);
    tokio::time::advance(30 * S).await;
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>().unwrap().retry_after,
        Some(30 * S)
    );
    assert_eq!(upstream.calls(), 5, "CB5: inner service not called");
    tokio::time::advance(30 * S).await;
    let res = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(h.state(), State::HalfOpen, "CB6");
    assert_eq!(upstream.calls(), 6);
}

#[tokio::test(start_paused = true)]
async fn half_open_with_probe_slots_taken_still_sends_retry_after() {
    // The breaker opens after 2 failures for 30 s and admits one probe, which takes 10 s.
    for (max_wait, expected) in [(Duration::ZERO, "30"), (20 * S, "18")] {
        let svc = ServiceBuilder::new()
            .layer(HandleRejectionsLayer::new())
            .layer(
                CircuitBreakerLayer::builder()
                    .window(SlidingWindow::Count(2))
                    .minimum_calls(2)
                    .wait_in_open(30 * S)
                    .permitted_in_half_open(1)
                    .max_wait_in_half_open(max_wait)
                    .build()
                    .unwrap(),
            )
            .service(ScriptedService::otherwise(delay(10 * S).then(status(502))));
        for _ in 0..2 {
            let res = svc.clone().oneshot(Request::new(())).await.unwrap();
            assert_eq!(res.status(), 502);
        }
        tokio::time::advance(30 * S).await;
        // The one probe goes in and takes 10 s.
        let probe = tokio::spawn(svc.clone().oneshot(Request::new(())));
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(2_500)).await;
        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), 503);
        // Without max_wait_in_half_open: wait_in_open (30 s); with 20 s: 17.5 s left → 18.
        assert_eq!(
            res.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some(expected),
            "max_wait_in_half_open {max_wait:?}"
        );
        drop(probe);
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_exact_through_handle_rejections() {
    let layer = specs_layer();
    let h = layer.handle();
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(
            CircuitBreakerLayer::builder()
                .window(SlidingWindow::Count(10))
                .minimum_calls(5)
                .wait_in_open(30 * S)
                .build()
                .unwrap(),
        )
        .service(ScriptedService::otherwise(status(502)));
    drop(h);
    for _ in 0..5 {
        assert_eq!(
            svc.clone()
                .oneshot(Request::new(()))
                .await
                .unwrap()
                .status(),
            502
        );
    }
    tokio::time::advance(Duration::from_millis(12_300)).await;
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers()["retry-after"],
        "18",
        "17.7 s left, rounded up"
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let grpc = Request::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let res = svc.oneshot(grpc).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-retry-pushback-ms"], "17700");
    let _ = layer;
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_n_of_1000_concurrent_callers() {
    let layer = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(10))
        .minimum_calls(1)
        .wait_in_open(S)
        .permitted_in_half_open(7)
        .classifier(ErrorsAsFailures)
        .build()
        .unwrap();
    let h = layer.handle();
    let entered = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let svc = layer.layer(service_fn(move |fail: bool| {
        let (e, r) = (e.clone(), r.clone());
        async move {
            if fail {
                return Err::<(), BoxError>("boom".into());
            }
            e.fetch_add(1, Ordering::SeqCst);
            r.notified().await;
            Ok(())
        }
    }));
    assert!(svc.clone().oneshot(true).await.is_err());
    assert_eq!(h.state(), State::Open);
    tokio::time::advance(S).await;

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        tasks.push(tokio::spawn(svc.clone().oneshot(false)));
    }
    // Let every task reach the breaker.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(entered.load(Ordering::SeqCst), 7);
    release.notify_waiters();
    let mut ok = 0;
    let mut rejected = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) if e.is::<CircuitOpen>() => rejected += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, rejected), (7, 993));
    assert_eq!(h.state(), State::Closed, "7 successful probes close it");
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_frees_its_slot() {
    let layer = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(10))
        .minimum_calls(1)
        .wait_in_open(S)
        .permitted_in_half_open(1)
        .classifier(ErrorsAsFailures)
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(svc_fn));
    assert!(svc.clone().oneshot((true, Duration::ZERO)).await.is_err());
    tokio::time::advance(S).await;
    // A probe that is cancelled (timeout above it, client gone) must not block HALF_OPEN.
    let probe = svc.clone().oneshot((false, 10 * S));
    let _ = tokio::time::timeout(Duration::from_millis(10), probe).await;
    assert_eq!(h.state(), State::HalfOpen);
    svc.clone().oneshot((false, Duration::ZERO)).await.unwrap();
    assert_eq!(h.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_states_through_the_handle() {
    let layer = specs_layer();
    let h = layer.handle();
    let upstream = ScriptedService::otherwise(error("boom"));
    let svc = layer.layer(upstream.clone());
    let get = || Request::new(());
    h.force_open();
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>().unwrap().retry_after,
        Some(60 * S),
        "FORCED_OPEN has no end of its own: the hint is wait_in_open"
    );
    assert_eq!(upstream.calls(), 0);
    h.disable();
    for _ in 0..20 {
        let err = svc.clone().oneshot(get()).await.unwrap_err();
        assert!(!err.is::<CircuitOpen>(), "DISABLED lets every call through");
    }
    assert_eq!(upstream.calls(), 20);
    assert_eq!(h.state(), State::Disabled);
    assert_eq!(h.totals().calls, 0, "DISABLED records nothing");
    h.metrics_only();
    for _ in 0..10 {
        let err = svc.clone().oneshot(get()).await.unwrap_err();
        assert!(!err.is::<CircuitOpen>(), "METRICS_ONLY never rejects");
    }
    assert_eq!(upstream.calls(), 30);
    assert_eq!(h.state(), State::MetricsOnly);
    assert_eq!(h.totals().failed, 10);
    assert!((h.failure_rate() - 100.0).abs() < f32::EPSILON);
    h.reset();
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.totals().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn keyed_breakers_are_isolated_and_bounded() {
    let by_key = key_fn(|r: &(&'static str, bool)| {
        if r.0.is_empty() {
            Err(KeyError::Missing { what: "key" })
        } else {
            Ok(r.0)
        }
    });
    let mut cfg = BreakerConfig::default();
    cfg.window = SlidingWindow::Count(5);
    cfg.minimum_calls = 2;
    let events = EventRecorder::new();
    let layer = KeyedCircuitBreakerLayer::new(by_key, &cfg, 2)
        .unwrap()
        .classifier(ErrorsAsFailures)
        .on_event(events.on());
    let svc = layer
        .clone()
        .layer(service_fn(|r: (&'static str, bool)| async move {
            if r.1 {
                Err::<(), BoxError>("boom".into())
            } else {
                Ok(())
            }
        }));
    for _ in 0..2 {
        assert!(svc.clone().oneshot(("a", true)).await.is_err());
    }
    assert_eq!(layer.state_of(&"a"), Some(State::Open));
    assert_eq!(
        transitions(&events),
        [(State::Closed, State::Open)],
        "keyed listeners see the opening"
    );
    svc.clone().oneshot(("b", false)).await.unwrap();
    assert_eq!(layer.state_of(&"b"), Some(State::Closed));
    assert!(
        svc.clone()
            .oneshot(("a", false))
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
    // A third key evicts the closed "b", never the open "a".
    svc.clone().oneshot(("c", false)).await.unwrap();
    assert_eq!(layer.tracked_keys(), 2);
    assert_eq!(layer.state_of(&"a"), Some(State::Open));
    assert_eq!(layer.state_of(&"b"), None);
    // A request without a key is a 400, not a panic.
    assert!(svc.oneshot(("", false)).await.unwrap_err().is::<KeyError>());
}

#[test]
fn no_lost_or_double_transitions_under_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let events = EventRecorder::new();
    let layer = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(20))
        .minimum_calls(5)
        .wait_in_open(Duration::from_millis(1))
        .permitted_in_half_open(3)
        .classifier(ErrorsAsFailures)
        .on_event(events.on())
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(|fail: bool| async move {
        if fail {
            Err(std::io::Error::other("x"))
        } else {
            Ok(())
        }
    }));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..5_000u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let fail = x % 3 == 0;
                    let _ = svc.clone().oneshot(fail).await;
                    if i % 64 == 0 {
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let log = transitions(&events);
    assert!(
        log.len() > 3,
        "the stress actually moved the breaker: {}",
        log.len()
    );
    assert_eq!(log[0].0, State::Closed);
    for pair in log.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].0,
            "every transition starts where the last ended"
        );
        assert_ne!(pair[1].0, pair[1].1);
    }
    assert_eq!(log.last().unwrap().1, h.state());
}

/// Resilience4j's automatic transition (`automatic_transition = true`): a timer moves
/// OPEN → HALF_OPEN without a call, and (CB10-style) a stalled HALF_OPEN back to OPEN after
/// `max_wait_in_half_open`.
#[tokio::test(start_paused = true)]
async fn automatic_transition_moves_states_without_calls() {
    let events = EventRecorder::new();
    let layer = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(10))
        .minimum_calls(5)
        .wait_in_open(60 * S)
        .permitted_in_half_open(3)
        .max_wait_in_half_open(5 * S)
        .automatic_transition(true)
        .classifier(ErrorsAsFailures)
        .on_event(events.on())
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(svc_fn));
    for _ in 0..5 {
        assert!(svc.clone().oneshot((true, Duration::ZERO)).await.is_err());
    }
    assert_eq!(h.state(), State::Open);
    tokio::time::sleep(59 * S).await;
    assert_eq!(h.state(), State::Open, "not before the wait ends");
    tokio::time::sleep(S).await;
    tokio::task::yield_now().await;
    assert_eq!(h.state(), State::HalfOpen, "no call needed");
    tokio::time::sleep(5 * S).await;
    tokio::task::yield_now().await;
    assert_eq!(h.state(), State::Open, "no probe within 5 s");
    assert_eq!(
        transitions(&events),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open),
        ]
    );
}

/// A TIME_BASED window: calls older than the window's seconds stop counting, so failures
/// spread thinly over time do not open the breaker, and the handle reads the live counts.
#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let layer = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Time(10))
        .minimum_calls(5)
        .failure_rate_threshold(50.0)
        .classifier(ErrorsAsFailures)
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(svc_fn));
    for _ in 0..4 {
        assert!(svc.clone().oneshot((true, Duration::ZERO)).await.is_err());
    }
    assert_eq!(h.totals().failed, 4);
    tokio::time::advance(11 * S).await;
    for _ in 0..4 {
        assert!(svc.clone().oneshot((true, Duration::ZERO)).await.is_err());
    }
    assert_eq!(
        h.state(),
        State::Closed,
        "the first 4 failures left the window"
    );
    assert_eq!(h.totals().calls, 4);
    assert!((h.failure_rate() - 100.0).abs() < f32::EPSILON);
    tokio::time::advance(5 * S).await;
    svc.clone().oneshot((false, Duration::ZERO)).await.unwrap();
    assert_eq!(
        h.state(),
        State::Open,
        "4 failures of 5 calls in 10 s (80%)"
    );
}

#[test]
fn the_name_comes_from_code_or_config_and_is_checked() {
    use palisade_breaker::{BreakerConfig, CircuitBreakerLayer};
    use palisade_core::Event;
    use palisade_core::event::StateGauge;

    let events = EventRecorder::new();
    let mut config = BreakerConfig::default();
    config.name = Some("payments".into());
    let layer = CircuitBreakerLayer::builder()
        .config(config)
        .on_event(events.on())
        .build()
        .unwrap();
    let handle = layer.handle();
    assert_eq!(handle.name(), "payments");
    assert_eq!(StateGauge::instance(&handle), "payments");
    assert_eq!(StateGauge::state(&handle), "closed");
    handle.force_open();
    assert_events!(events, BreakerEvent, [BreakerEvent::StateChanged { .. }]);
    let names: Vec<_> = events
        .events::<BreakerEvent>()
        .iter()
        .map(|e| e.instance().to_owned())
        .collect();
    assert_eq!(names, ["payments"]);

    let unnamed = CircuitBreakerLayer::builder().build().unwrap();
    assert_eq!(unnamed.handle().name(), "breaker");
    let bad = CircuitBreakerLayer::builder().name("").build().unwrap_err();
    assert_eq!(bad.field(), "name");
}

/// Outcomes are recorded without a lock in CLOSED: two worker threads failing at once open
/// the breaker exactly once (one transition, announced once), and the successes recorded
/// concurrently before it all count.
#[test]
fn concurrent_outcomes_open_the_breaker_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let events = EventRecorder::new();
    let layer = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(1_000))
        .minimum_calls(1_000)
        .failure_rate_threshold(50.0)
        .classifier(ErrorsAsFailures)
        .on_event(events.on())
        .build()
        .unwrap();
    let h = layer.handle();
    let svc = layer.layer(service_fn(|fail: bool| async move {
        if fail {
            Err(std::io::Error::other("x"))
        } else {
            Ok(())
        }
    }));
    rt.block_on(async {
        // 2 × 250 successes, then 2 × 250 failures: the window fills (1,000 calls, 50 %
        // failed) with the last failure, which opens it.
        for fail in [false, true] {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let svc = svc.clone();
                    tokio::spawn(async move {
                        for _ in 0..250 {
                            let r = svc.clone().oneshot(fail).await;
                            assert!(r.is_ok() != fail, "admitted while closed");
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let t = h.totals();
            if !fail {
                assert_eq!((t.calls, t.failed), (500, 0));
            }
        }
    });
    assert_eq!(h.state(), State::Open);
    assert_eq!(transitions(&events), [(State::Closed, State::Open)]);
    assert_eq!(h.totals().calls, 1_000);
    assert_eq!(h.totals().failed, 500);
}
