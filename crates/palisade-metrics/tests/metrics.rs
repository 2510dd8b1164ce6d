//! RED metrics through the layer, event counting, Prometheus exposition.

use std::time::Duration;

use http::{Request, Response};
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use palisade_core::event::{Event, Listeners};
use palisade_core::{BoxError, CircuitOpen, Elapsed, RateLimited};
use palisade_metrics::{EventMetrics, MetricsLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

/// One snapshot (the debugging recorder resets counters when snapshotted).
struct Snap(Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>);

fn take(snapshotter: &Snapshotter) -> Snap {
    Snap(snapshotter.snapshot().into_vec())
}

fn value<'a>(snap: &'a Snap, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    snap.0.iter().find_map(|(k, _, _, v)| {
        let key = k.key();
        let mut got: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        got.sort_unstable();
        let mut want = labels.to_vec();
        want.sort_unstable();
        (key.name() == name && got == want).then_some(v)
    })
}

fn counter(snap: &Snap, route: &str, outcome: &str) -> u64 {
    match value(
        snap,
        "palisade_requests_total",
        &[("route", route), ("outcome", outcome)],
    ) {
        Some(DebugValue::Counter(c)) => *c,
        None => 0,
        Some(other) => panic!("not a counter: {other:?}"),
    }
}

fn gauge(snap: &Snap, route: &str) -> f64 {
    match value(snap, "palisade_requests_in_flight", &[("route", route)]) {
        Some(DebugValue::Gauge(g)) => g.into_inner(),
        other => panic!("no gauge: {other:?}"),
    }
}

fn histogram(snap: &Snap, route: &str) -> Vec<f64> {
    match value(
        snap,
        "palisade_request_duration_seconds",
        &[("route", route)],
    ) {
        Some(DebugValue::Histogram(h)) => h.iter().map(|v| v.into_inner()).collect(),
        other => panic!("no histogram: {other:?}"),
    }
}

/// A handler scripted by path: takes 100 ms, then answers or fails as the path says.
async fn scripted(req: Request<()>) -> Result<Response<()>, BoxError> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    match req.uri().path() {
        "/limited" => {
            Err(RateLimited::new(Duration::from_secs(1), http::HeaderMap::new(), vec![]).into())
        }
        "/slow" => Err(Elapsed::new(Duration::from_millis(100)).into()),
        "/open" => Err(CircuitOpen::new(None).into()),
        "/boom" => Err("boom".into()),
        "/500" => Ok(Response::builder().status(500).body(()).unwrap()),
        _ => Ok(Response::new(())),
    }
}

#[tokio::test(start_paused = true)]
async fn scripted_sequence_gives_exact_counts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let svc = MetricsLayer::with_route("checkout").layer(service_fn(scripted));
    let script = [
        ("/ok", 10),
        ("/limited", 3),
        ("/slow", 2),
        ("/open", 1),
        ("/boom", 1),
        ("/500", 1),
    ];
    for (path, n) in script {
        for _ in 0..n {
            let _ = svc
                .clone()
                .oneshot(Request::get(path).body(()).unwrap())
                .await;
        }
    }
    let snap = take(&snapshotter);
    assert_eq!(counter(&snap, "checkout", "success"), 10);
    assert_eq!(counter(&snap, "checkout", "rate_limited"), 3);
    assert_eq!(counter(&snap, "checkout", "timeout"), 2);
    assert_eq!(counter(&snap, "checkout", "circuit_open"), 1);
    assert_eq!(counter(&snap, "checkout", "failure"), 2); // "boom" and the 500
    assert_eq!(counter(&snap, "checkout", "cancelled"), 0);
    let h = histogram(&snap, "checkout");
    assert_eq!(h.len(), 18);
    assert!(h.iter().all(|v| (*v - 0.1).abs() < 1e-9), "{h:?}");
    assert!(gauge(&snap, "checkout").abs() < f64::EPSILON);
}

#[tokio::test(start_paused = true)]
async fn in_flight_and_cancellation() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let mut svc = MetricsLayer::with_route("r").layer(service_fn(scripted));
    svc.ready().await.unwrap();
    let first = svc.call(Request::get("/ok").body(()).unwrap());
    svc.ready().await.unwrap();
    let second = svc.call(Request::get("/ok").body(()).unwrap());
    // The debugging recorder resets values on snapshot, so gauges read as deltas.
    assert!((gauge(&take(&snapshotter), "r") - 2.0).abs() < f64::EPSILON);
    first.await.unwrap();
    let snap = take(&snapshotter);
    assert!(
        (gauge(&snap, "r") + 1.0).abs() < f64::EPSILON,
        "{}",
        gauge(&snap, "r")
    );
    assert_eq!(counter(&snap, "r", "success"), 1);
    assert_eq!(histogram(&snap, "r").len(), 1);
    drop(second);
    let snap = take(&snapshotter);
    assert!((gauge(&snap, "r") + 1.0).abs() < f64::EPSILON);
    assert_eq!(counter(&snap, "r", "cancelled"), 1);
}

#[tokio::test(start_paused = true)]
async fn custom_classifier_decides_success() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let svc = MetricsLayer::with_route("r")
        .classifier(palisade_core::ErrorsAsFailures)
        .layer(service_fn(scripted));
    svc.clone()
        .oneshot(Request::get("/500").body(()).unwrap())
        .await
        .unwrap();
    let _ = svc.oneshot(Request::get("/boom").body(()).unwrap()).await;
    let snap = take(&snapshotter);
    assert_eq!(counter(&snap, "r", "success"), 1);
    assert_eq!(counter(&snap, "r", "failure"), 1);
}

#[tokio::test]
async fn events_are_counted_by_layer_and_name() {
    #[derive(Debug)]
    enum BreakerEvent {
        Opened,
        Closed,
    }
    impl Event for BreakerEvent {
        fn layer(&self) -> &'static str {
            "breaker"
        }
        fn name(&self) -> &'static str {
            match self {
                Self::Opened => "opened",
                Self::Closed => "closed",
            }
        }
    }
    #[derive(Debug)]
    struct Retried;
    impl Event for Retried {
        fn layer(&self) -> &'static str {
            "retry"
        }
        fn name(&self) -> &'static str {
            "attempt"
        }
    }

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let listener = EventMetrics::new()
        .on(|e: &BreakerEvent| {
            let open = matches!(e, BreakerEvent::Opened);
            metrics::gauge!("palisade_breaker_open").set(f64::from(u8::from(open)));
        })
        .into_listener();
    let breaker = Listeners::new().on_any(listener.clone());
    let retry = Listeners::new().on_any(listener);
    breaker.emit_with(|| BreakerEvent::Opened);
    breaker.emit_with(|| BreakerEvent::Closed);
    breaker.emit_with(|| BreakerEvent::Opened);
    for _ in 0..5 {
        retry.emit_with(|| Retried);
    }
    let snap = take(&snapshotter);
    let events = |layer, event| {
        value(
            &snap,
            "palisade_events_total",
            &[("layer", layer), ("event", event)],
        )
    };
    assert_eq!(events("breaker", "opened"), Some(&DebugValue::Counter(2)));
    assert_eq!(events("breaker", "closed"), Some(&DebugValue::Counter(1)));
    assert_eq!(events("retry", "attempt"), Some(&DebugValue::Counter(5)));
    // The typed hook saw only breaker events; the last one was "opened".
    match value(&snap, "palisade_breaker_open", &[]) {
        Some(DebugValue::Gauge(g)) => assert!((g.into_inner() - 1.0).abs() < f64::EPSILON),
        other => panic!("{other:?}"),
    }
}

#[test]
fn max_routes_is_validated() {
    let err = MetricsLayer::new().max_routes(0).unwrap_err();
    assert_eq!(err.field(), "max_routes");
}

#[cfg(feature = "axum")]
mod axum_routes {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use palisade_core::HandleRejectionsLayer;
    use tower::ServiceBuilder;

    fn app(layer: MetricsLayer) -> Router {
        Router::new()
            .route("/users/{id}", get(|| async { "user" }))
            .route("/orders/{id}", get(|| async { "order" }))
            .route(
                "/limited",
                get(|| async {
                    Err::<&'static str, _>(palisade_core::response::rejection_response(
                        &RateLimited::new(Duration::from_secs(1), http::HeaderMap::new(), vec![]),
                    ))
                }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(HandleRejectionsLayer::new())
                    .layer(layer),
            )
    }

    #[tokio::test]
    async fn route_label_is_the_matched_template() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let app = app(MetricsLayer::new());
        for path in [
            "/users/1",
            "/users/2",
            "/users/3",
            "/orders/9",
            "/nope",
            "/limited",
        ] {
            let _ = app
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
        }
        let snap = take(&snapshotter);
        assert_eq!(counter(&snap, "/users/{id}", "success"), 3);
        assert_eq!(counter(&snap, "/orders/{id}", "success"), 1);
        assert_eq!(counter(&snap, "unmatched", "success"), 1); // 404 from the fallback
        // A handler answering 429 itself is a failure by the classifier.
        assert_eq!(counter(&snap, "/limited", "failure"), 1);
        assert_eq!(counter(&snap, "/users/1", "success"), 0);
    }

    #[tokio::test]
    async fn overflowing_routes_are_labelled_other() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let app = app(MetricsLayer::new().max_routes(1).unwrap());
        for path in ["/users/1", "/orders/1", "/orders/2", "/users/2"] {
            app.clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
        }
        let snap = take(&snapshotter);
        assert_eq!(counter(&snap, "/users/{id}", "success"), 2);
        assert_eq!(counter(&snap, "other", "success"), 2);
        assert_eq!(counter(&snap, "/orders/{id}", "success"), 0);
    }
}
