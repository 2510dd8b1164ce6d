//! Typed per-layer metrics from `EventMetrics`, driving the real layers under paused time.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Recording, Snap};
use http::{Request, Response};
use http_body_util::Full;
use palisade_breaker::{CircuitBreakerLayer, SlidingWindow};
use palisade_bulkhead::BulkheadLayer;
use palisade_core::ErrorsAsFailures;
use palisade_core::event::{Event, Listeners};
use palisade_metrics::EventMetrics;
use palisade_retry::{Backoff, Budget, RetryBody, RetryLayer};
use palisade_traffic::{CanaryConfig, CanaryController, Split, Tick};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn breaker_state_gauge_and_transitions() {
    let recorder = Recording::start();

    let events = EventMetrics::new();
    let layer = CircuitBreakerLayer::builder()
        .name("payments")
        .window(SlidingWindow::Count(4))
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(5))
        .permitted_in_half_open(1)
        .classifier(ErrorsAsFailures)
        .on_event(events.callback())
        .build()
        .unwrap();
    let fail = Arc::new(AtomicU32::new(1));
    let f = fail.clone();
    let svc = layer.layer(service_fn(move |(): ()| {
        let failing = f.load(Ordering::SeqCst) == 1;
        async move {
            if failing {
                Err::<(), _>("down")
            } else {
                Ok(())
            }
        }
    }));

    svc.clone().oneshot(()).await.unwrap_err();
    svc.clone().oneshot(()).await.unwrap_err(); // opens
    svc.clone().oneshot(()).await.unwrap_err(); // rejected while open
    // The debugging recorder swaps every value to 0 when snapshotted: each snapshot holds
    // what changed since the previous one (and a gauge's last value).
    let snap = recorder.snap();
    let state = |s: &Snap| s.gauge("palisade_breaker_state", &[("breaker", "payments")]);
    let transitions = |s: &Snap, from, to| {
        s.counter(
            "palisade_breaker_transitions_total",
            &[("breaker", "payments"), ("from", from), ("to", to)],
        )
    };
    assert!((state(&snap) - 1.0).abs() < f64::EPSILON);
    assert_eq!(transitions(&snap, "closed", "open"), 1);
    assert_eq!(snap.events("breaker", "rejected"), 1);

    fail.store(0, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(5)).await;
    svc.clone().oneshot(()).await.unwrap(); // half-open probe succeeds: closes
    let snap = recorder.snap();
    assert!(state(&snap).abs() < f64::EPSILON); // 2 (half-open), then 0 (closed)
    assert_eq!(transitions(&snap, "open", "half_open"), 1);
    assert_eq!(transitions(&snap, "half_open", "closed"), 1);
    assert_eq!(transitions(&snap, "closed", "open"), 0);
    assert_eq!(transitions(&snap, "half_open", "open"), 0);
}

/// Allows the first `n` retries, then refuses.
#[derive(Debug)]
struct Allow(AtomicU32);

impl Budget for Allow {
    fn deposit(&self) {}
    fn withdraw(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[tokio::test(start_paused = true)]
async fn retry_attempts_and_budget_exhaustion() {
    let recorder = Recording::start();

    let events = EventMetrics::new();
    let upstream = service_fn(|_req: Request<RetryBody<Full<Bytes>>>| async {
        Ok::<_, Infallible>(Response::builder().status(503).body(()).unwrap())
    });
    let svc = RetryLayer::new()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(Allow(AtomicU32::new(2)))
        .on_event(events.callback())
        .layer(upstream);
    for _ in 0..2 {
        let res = svc
            .clone()
            .oneshot(Request::get("/x").body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
    }
    // First request: 2 retries (budget now empty), max attempts reached.
    // Second request: its first retry is refused by the budget.
    let snap = recorder.snap();
    let attempts = |reason| {
        snap.counter(
            "palisade_retry_attempts_total",
            &[("retry", "retry"), ("reason", reason)],
        )
    };
    assert_eq!(attempts("status"), 2);
    assert_eq!(attempts("error"), 0);
    assert_eq!(attempts("grpc"), 0);
    assert_eq!(
        snap.counter(
            "palisade_retry_budget_exhausted_total",
            &[("retry", "retry")]
        ),
        1
    );
    assert_eq!(snap.events("retry", "exhausted"), 1);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_occupancy_and_rejections() {
    let recorder = Recording::start();

    let events = EventMetrics::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_queue(1)
        .release_on_response()
        .on_event(events.callback())
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|(): ()| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>("done")
    }));
    let first = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await; // holds the slot
    let second = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await; // waits in the queue
    assert!(svc.clone().oneshot(()).await.is_err()); // queue full
    assert_eq!(first.await.unwrap().unwrap(), "done");
    assert_eq!(second.await.unwrap().unwrap(), "done");

    let snap = recorder.snap();
    assert_eq!(
        snap.histogram(
            "palisade_bulkhead_in_flight_at_admission",
            &[("bulkhead", "bulkhead")]
        ),
        vec![1.0, 1.0]
    );
    assert_eq!(
        snap.histogram(
            "palisade_bulkhead_queue_depth_at_enqueue",
            &[("bulkhead", "bulkhead")]
        ),
        vec![1.0]
    );
    let rejections = |reason| {
        snap.counter(
            "palisade_bulkhead_rejections_total",
            &[("bulkhead", "bulkhead"), ("reason", reason)],
        )
    };
    assert_eq!(rejections("full"), 1);
    assert_eq!(rejections("queue_timeout"), 0);
    assert_eq!(rejections("too_many_keys"), 0);
}

type Arm = BoxCloneService<Request<()>, Response<()>, Infallible>;

/// A split of `stable` and `canary` answering 200 and `canary_status`, with a controller
/// (steps 20, 50, 100 %) already started.
fn canary(
    canary: &'static str,
    canary_status: u16,
    events: &EventMetrics,
) -> (Split<Arm>, CanaryController) {
    let arm = |status: u16| -> Arm {
        BoxCloneService::new(service_fn(move |_req: Request<()>| async move {
            Ok(Response::builder().status(status).body(()).unwrap())
        }))
    };
    let (split, handle) = Split::builder()
        .arm("stable", arm(200))
        .arm(canary, arm(canary_status))
        .seed(7)
        .on_event(events.callback())
        .build()
        .unwrap();
    let mut config = CanaryConfig::default();
    config.steps = vec![20, 50, 100];
    config.min_samples = 10;
    let controller = CanaryController::start(handle, "stable", canary, config).unwrap();
    (split, controller)
}

async fn send(split: &Split<Arm>, n: usize) {
    for _ in 0..n {
        split.clone().oneshot(Request::new(())).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn canary_weight_and_rollback() {
    let recorder = Recording::start();
    let events = EventMetrics::new();
    let weight = |s: &Snap, arm| {
        s.gauge(
            "palisade_canary_weight_percent",
            &[("traffic", "traffic"), ("arm", arm)],
        )
    };

    // Healthy: 20 % from the start, 50 %, then promoted to 100 %.
    let (split, mut healthy) = canary("green", 200, &events);
    assert!((weight(&recorder.snap(), "green") - 20.0).abs() < f64::EPSILON);
    send(&split, 200).await;
    assert_eq!(healthy.tick(), Tick::Advanced { percent: 50 });
    assert!((weight(&recorder.snap(), "green") - 50.0).abs() < f64::EPSILON);
    send(&split, 200).await;
    assert_eq!(healthy.tick(), Tick::Promoted);
    assert!((weight(&recorder.snap(), "green") - 100.0).abs() < f64::EPSILON);

    // Failing: 20 % from the start, rolled back to 0 % at the first analysis.
    let (split, mut failing) = canary("red", 500, &events);
    assert!((weight(&recorder.snap(), "red") - 20.0).abs() < f64::EPSILON);
    send(&split, 200).await;
    assert!(matches!(failing.tick(), Tick::RolledBack(_)));
    let snap = recorder.snap();
    assert!(weight(&snap, "red").abs() < f64::EPSILON);
    let rollbacks = |arm, reason| {
        snap.counter(
            "palisade_canary_rollbacks_total",
            &[("traffic", "traffic"), ("arm", arm), ("reason", reason)],
        )
    };
    assert_eq!(rollbacks("red", "error_rate"), 1);
    assert_eq!(rollbacks("red", "latency"), 0);
    assert_eq!(rollbacks("green", "error_rate"), 0);
}

#[test]
fn canary_arm_labels_are_capped() {
    use palisade_traffic::TrafficEvent;

    let recorder = Recording::start();
    let listeners = Listeners::new().on_any(EventMetrics::new().into_listener());
    for i in 0..40 {
        let arm: Arc<str> = format!("arm-{i}").into();
        listeners.emit_with(|| TrafficEvent::Advanced {
            instance: "traffic".into(),
            arm,
            percent: 10,
        });
    }
    let snap = recorder.snap();
    let arms = snap.label_values("palisade_canary_weight_percent", "arm");
    assert_eq!(arms.len(), 33, "{arms:?}"); // 32 names + "other"
    assert!(arms.contains(&"other"));
    assert!(!arms.contains(&"arm-39"));
}

#[test]
fn layer_metrics_can_be_turned_off() {
    #[derive(Debug)]
    struct Custom;
    impl Event for Custom {
        fn layer(&self) -> &'static str {
            "custom"
        }
        fn name(&self) -> &'static str {
            "ping"
        }
    }
    let recorder = Recording::start();
    let ratelimit =
        Listeners::new().on_any(EventMetrics::new().without_layer_metrics().into_listener());
    ratelimit.emit_with(|| palisade_traffic::TrafficEvent::Promoted {
        instance: "traffic".into(),
        arm: "canary".into(),
    });
    let custom = Listeners::new().on_any(EventMetrics::new().into_listener());
    custom.emit_with(|| Custom);
    let snap = recorder.snap();
    assert_eq!(snap.events("traffic", "promoted"), 1);
    assert_eq!(snap.events("custom", "ping"), 1);
    assert_eq!(snap.names().len(), 2, "{:?}", snap.names());
}

/// Two bulkheads named in code and config: two series each, never one sum.
#[tokio::test(start_paused = true)]
async fn two_named_bulkheads_are_two_series() {
    use palisade_bulkhead::BulkheadConfig;

    let recorder = Recording::start();
    let events = EventMetrics::new();
    let db = BulkheadLayer::builder()
        .name("db")
        .max_concurrent(1)
        .release_on_response()
        .on_event(events.callback())
        .build()
        .unwrap();
    let mut config = BulkheadConfig::default();
    config.name = Some("cache".into());
    config.max_concurrent = 2;
    let cache = BulkheadLayer::builder()
        .config(config)
        .release_on_response()
        .on_event(events.callback())
        .build()
        .unwrap();
    let slow = service_fn(|(): ()| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(())
    });
    let (db, cache) = (db.layer(slow), cache.layer(slow));

    // db: 1 admitted, 2 refused; cache: 2 admitted (1 then 2 inside), 1 refused.
    let held = [
        tokio::spawn(db.clone().oneshot(())),
        tokio::spawn(cache.clone().oneshot(())),
        tokio::spawn(cache.clone().oneshot(())),
    ];
    tokio::task::yield_now().await;
    for _ in 0..2 {
        assert!(db.clone().oneshot(()).await.is_err());
    }
    assert!(cache.clone().oneshot(()).await.is_err());
    for call in held {
        call.await.unwrap().unwrap();
    }

    let snap = recorder.snap();
    let admitted = |name| {
        snap.histogram(
            "palisade_bulkhead_in_flight_at_admission",
            &[("bulkhead", name)],
        )
    };
    assert_eq!(admitted("db"), vec![1.0]);
    assert_eq!(admitted("cache"), vec![1.0, 2.0]);
    let full = |name| {
        snap.counter(
            "palisade_bulkhead_rejections_total",
            &[("bulkhead", name), ("reason", "full")],
        )
    };
    assert_eq!((full("db"), full("cache")), (2, 1));
    assert_eq!(snap.instance_events("bulkhead", "db", "admitted"), 1);
    assert_eq!(snap.instance_events("bulkhead", "db", "rejected"), 2);
    assert_eq!(snap.instance_events("bulkhead", "cache", "admitted"), 2);
    assert_eq!(snap.instance_events("bulkhead", "cache", "rejected"), 1);
    let mut names = snap.label_values("palisade_bulkhead_rejections_total", "bulkhead");
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, ["cache", "db"]);
}

/// A stream processor's events (messaging's `ConsumerEvent`, read through core's vocabulary
/// alone): counted per processor, message type and outcome, types capped at 64.
#[test]
fn messages_by_type_and_outcome() {
    #[derive(Debug)]
    struct Settled {
        outcome: &'static str,
        kind: String,
    }
    impl Event for Settled {
        fn layer(&self) -> &'static str {
            "stream_processor"
        }
        fn name(&self) -> &'static str {
            self.outcome
        }
        fn instance(&self) -> &'static str {
            "orders"
        }
        fn target(&self) -> Option<&str> {
            Some(&self.kind)
        }
    }
    let recorder = Recording::start();
    let listeners = Listeners::new().on_any(EventMetrics::new().into_listener());
    let emit = |outcome, kind: &str| {
        listeners.emit_with(|| Settled {
            outcome,
            kind: kind.to_owned(),
        });
    };
    emit("handled", "order.created");
    emit("handled", "order.created");
    emit("retried", "order.created");
    emit("dead_lettered", "order.paid");
    emit("disconnected", "");
    for i in 0..70 {
        emit("handled", &format!("t{i}"));
    }
    let snap = recorder.snap();
    let messages = |kind, outcome| {
        snap.counter(
            "palisade_messages_total",
            &[
                ("processor", "orders"),
                ("type", kind),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(messages("order.created", "handled"), 2);
    assert_eq!(messages("order.created", "retried"), 1);
    assert_eq!(messages("order.paid", "dead_lettered"), 1);
    let types: std::collections::BTreeSet<_> = snap
        .label_values("palisade_messages_total", "type")
        .into_iter()
        .collect();
    assert_eq!(types.len(), 65, "{types:?}"); // 64 names + "other"
    assert_eq!(messages("other", "handled"), 8); // t62..t69
}

#[tokio::test(start_paused = true)]
async fn adaptive_throttle_sheds_are_counted() {
    use palisade_retry::throttle::AdaptiveThrottleLayer;

    let recorder = Recording::start();
    let events = EventMetrics::new();
    let layer = AdaptiveThrottleLayer::new()
        .name("search")
        .seed(5)
        .on_event(events.callback());
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        let mut res = Response::new(());
        *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        Ok::<_, Infallible>(res)
    }));
    let mut shed = 0_u64;
    for _ in 0..200 {
        if svc.clone().oneshot(Request::new(())).await.is_err() {
            shed += 1;
        }
    }
    assert!(shed > 150, "{shed}");
    let snap = recorder.snap();
    assert_eq!(
        snap.counter(
            "palisade_adaptive_throttle_throttled_total",
            &[("adaptive_throttle", "search")]
        ),
        shed
    );
    assert_eq!(snap.events("adaptive_throttle", "throttled"), shed);
}
