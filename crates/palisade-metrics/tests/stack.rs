//! Full stacks: HandleRejections → Metrics → (rate limit → breaker →) Timeout → handler,
//! with the layers' events turned into metrics by `EventMetrics`; and Metrics → Idempotency.
//! Exact counts after scripted sequences.

use std::time::Duration;

use http::{Request, Response};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use palisade_core::event::AnyListener;
use palisade_core::{BoxError, HandleRejectionsLayer, RateLimited};
use palisade_metrics::{EventMetrics, MetricsLayer};
use palisade_timeout::TimeoutLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

async fn handler(
    req: Request<()>,
) -> Result<Response<http_body_util::Empty<bytes::Bytes>>, BoxError> {
    match req.uri().path() {
        "/limited" => Err(RateLimited::new(
            Duration::from_secs(2),
            http::HeaderMap::new(),
            vec!["default".into()],
        )
        .into()),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Response::new(http_body_util::Empty::new()))
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(Response::new(http_body_util::Empty::new()))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn ten_ok_three_rate_limited_two_timeouts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let events = EventMetrics::new();
    let stack = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(MetricsLayer::with_route("api"))
        .layer(TimeoutLayer::new(Duration::from_millis(50)).on_event(move |e| events.on_event(e)))
        .service(service_fn(handler));

    let mut statuses = Vec::new();
    for (path, n) in [("/ok", 10), ("/limited", 3), ("/slow", 2)] {
        for _ in 0..n {
            let res = stack
                .clone()
                .oneshot(Request::get(path).body(()).unwrap())
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 504).count(), 2);

    let snap = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snap.iter().find_map(|(k, _, _, v)| {
            let key = k.key();
            let got: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
            (key.name() == name && got == labels).then_some(v)
        })
    };
    let requests = |outcome| {
        find(
            "palisade_requests_total",
            &[("route", "api"), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("success"), Some(&DebugValue::Counter(10)));
    assert_eq!(requests("rate_limited"), Some(&DebugValue::Counter(3)));
    assert_eq!(requests("timeout"), Some(&DebugValue::Counter(2)));
    assert_eq!(requests("failure"), Some(&DebugValue::Counter(0)));
    assert_eq!(
        find(
            "palisade_events_total",
            &[("layer", "timeout"), ("event", "elapsed")]
        ),
        Some(&DebugValue::Counter(2))
    );
    match find("palisade_request_duration_seconds", &[("route", "api")]) {
        Some(DebugValue::Histogram(h)) => {
            let mut ms: Vec<u64> = h
                .iter()
                .map(|v| (v.into_inner() * 1000.0).round() as u64)
                .collect();
            ms.sort_unstable();
            let mut want = vec![0; 3];
            want.extend([10; 10]);
            want.extend([50; 2]);
            assert_eq!(ms, want);
        }
        other => panic!("{other:?}"),
    }
}

/// The script through a real stack: 10 ok, 2 timeouts (which open the breaker),
/// 1 call refused by the open breaker, 3 rate limited.
#[tokio::test(start_paused = true)]
async fn ten_ok_two_timeouts_breaker_opened_once_three_rate_limited() {
    use palisade_breaker::{CircuitBreakerLayer, SlidingWindow};
    use palisade_core::key::GlobalKey;
    use palisade_ratelimit::{Quota, RateLimitLayer};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let events = EventMetrics::new();
    let stack = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(MetricsLayer::with_route("api"))
        .layer(
            RateLimitLayer::new(GlobalKey, Quota::per_minute("default", 13).unwrap())
                .on_event(events.callback()),
        )
        .layer(
            CircuitBreakerLayer::builder()
                .name("upstream")
                .window(SlidingWindow::Count(12))
                .minimum_calls(12)
                .failure_rate_threshold(10.0)
                .on_event(events.callback())
                .build()
                .unwrap(),
        )
        .layer(TimeoutLayer::new(Duration::from_millis(50)).on_event(events.callback()))
        .service(service_fn(handler));

    let mut statuses = Vec::new();
    for (path, n) in [("/ok", 10), ("/slow", 2), ("/ok", 1), ("/ok", 3)] {
        for _ in 0..n {
            let res = stack
                .clone()
                .oneshot(Request::get(path).body(()).unwrap())
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
        }
    }
    let mut want = vec![200; 10];
    want.extend([504, 504, 503, 429, 429, 429]);
    assert_eq!(statuses, want);

    let snap = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snap.iter().find_map(|(k, _, _, v)| {
            let key = k.key();
            let mut got: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
            got.sort_unstable();
            let mut want = labels.to_vec();
            want.sort_unstable();
            (key.name() == name && got == want).then_some(v)
        })
    };
    let counter = |name: &str, labels: &[(&str, &str)]| match find(name, labels) {
        Some(DebugValue::Counter(c)) => *c,
        None => 0,
        other => panic!("{name}: {other:?}"),
    };
    let requests = |outcome| {
        counter(
            "palisade_requests_total",
            &[("route", "api"), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("success"), 10);
    assert_eq!(requests("timeout"), 2);
    assert_eq!(requests("circuit_open"), 1);
    assert_eq!(requests("rate_limited"), 3);
    assert_eq!(requests("failure"), 0);

    let breaker = [("breaker", "upstream")];
    match find("palisade_breaker_state", &breaker) {
        Some(DebugValue::Gauge(g)) => assert!((g.into_inner() - 1.0).abs() < f64::EPSILON),
        other => panic!("{other:?}"),
    }
    let transitions = |from, to| {
        counter(
            "palisade_breaker_transitions_total",
            &[("breaker", "upstream"), ("from", from), ("to", to)],
        )
    };
    assert_eq!(transitions("closed", "open"), 1);
    let decisions = |decision| {
        counter(
            "palisade_ratelimit_decisions_total",
            &[("decision", decision)],
        )
    };
    assert_eq!(decisions("allowed"), 13);
    assert_eq!(decisions("limited"), 3);
    let events_total = |layer, event| {
        counter(
            "palisade_events_total",
            &[("layer", layer), ("event", event)],
        )
    };
    assert_eq!(events_total("timeout", "elapsed"), 2);
    assert_eq!(events_total("breaker", "state_changed"), 1);
    assert_eq!(events_total("breaker", "rejected"), 1);
    assert_eq!(events_total("ratelimit", "limited"), 3);
}

/// A response replayed by the idempotency layer is counted as `idempotent_replay`, even a
/// replayed 500.
#[tokio::test]
async fn idempotent_replays_have_their_own_outcome() {
    use http_body_util::Full;
    use palisade_idempotency::{IdempotencyLayer, MemoryStore};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::with_route("charges"))
        .layer(IdempotencyLayer::new(MemoryStore::new()))
        .service(service_fn(
            |req: Request<palisade_idempotency::body::RequestBody<Full<bytes::Bytes>>>| async move {
                let status = if req.uri().path() == "/fail" {
                    500
                } else {
                    201
                };
                Ok::<_, BoxError>(
                    Response::builder()
                        .status(status)
                        .body(Full::new(bytes::Bytes::from_static(b"done")))
                        .unwrap(),
                )
            },
        ));
    let post = |path: &str, key: &str| {
        Request::post(path)
            .header("idempotency-key", format!("\"{key}\""))
            .body(Full::new(bytes::Bytes::from_static(b"amount=10")))
            .unwrap()
    };
    let mut replayed = Vec::new();
    for (path, key) in [
        ("/charges", "a"),
        ("/charges", "a"),
        ("/charges", "a"),
        ("/charges", "b"),
        ("/fail", "c"),
        ("/fail", "c"),
    ] {
        let res = stack.clone().oneshot(post(path, key)).await.unwrap();
        replayed.push(res.headers().contains_key("idempotent-replayed"));
    }
    assert_eq!(replayed, [false, true, true, false, false, true]);
    assert!(palisade_idempotency::key::IDEMPOTENT_REPLAYED == "idempotent-replayed");

    let snap = snapshotter.snapshot().into_vec();
    let requests = |outcome: &str| {
        snap.iter().find_map(|(k, _, _, v)| {
            let key = k.key();
            (key.name() == "palisade_requests_total"
                && key
                    .labels()
                    .any(|l| l.key() == "outcome" && l.value() == outcome))
            .then_some(v)
        })
    };
    assert_eq!(requests("success"), Some(&DebugValue::Counter(2)));
    assert_eq!(requests("idempotent_replay"), Some(&DebugValue::Counter(3)));
    assert_eq!(requests("failure"), Some(&DebugValue::Counter(1)));
}
