//! RED metrics through the layer, event counting, Prometheus exposition.

mod common;

use std::time::Duration;

use common::Recording;
use http::Request;
use palisade_core::event::{Event, Listeners};
use palisade_metrics::{EventMetrics, MetricsLayer};
use tower::{Layer, Service, ServiceExt};

/// Each scripted call takes 100 ms.
const DELAY: Duration = Duration::from_millis(100);

#[tokio::test(start_paused = true)]
async fn scripted_sequence_gives_exact_counts() {
    let recorder = Recording::start();

    let svc = MetricsLayer::with_route("checkout").layer(common::scripted(DELAY));
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
    let snap = recorder.snap();
    assert_eq!(snap.requests("checkout", "success"), 10);
    assert_eq!(snap.requests("checkout", "rate_limited"), 3);
    assert_eq!(snap.requests("checkout", "timeout"), 2);
    assert_eq!(snap.requests("checkout", "circuit_open"), 1);
    assert_eq!(snap.requests("checkout", "failure"), 2); // "boom" and the 500
    assert_eq!(snap.requests("checkout", "cancelled"), 0);
    let h = snap.durations("checkout");
    assert_eq!(h.len(), 18);
    assert!(h.iter().all(|v| (*v - 0.1).abs() < 1e-9), "{h:?}");
    assert!(snap.in_flight("checkout").abs() < f64::EPSILON);
}

#[tokio::test(start_paused = true)]
async fn in_flight_and_cancellation() {
    let recorder = Recording::start();

    let mut svc = MetricsLayer::with_route("r").layer(common::scripted(DELAY));
    ServiceExt::<Request<()>>::ready(&mut svc).await.unwrap();
    let first = svc.call(Request::get("/ok").body(()).unwrap());
    ServiceExt::<Request<()>>::ready(&mut svc).await.unwrap();
    let second = svc.call(Request::get("/ok").body(()).unwrap());
    // The debugging recorder resets values on snapshot, so gauges read as deltas.
    assert!((recorder.snap().in_flight("r") - 2.0).abs() < f64::EPSILON);
    first.await.unwrap();
    let snap = recorder.snap();
    assert!(
        (snap.in_flight("r") + 1.0).abs() < f64::EPSILON,
        "{}",
        snap.in_flight("r")
    );
    assert_eq!(snap.requests("r", "success"), 1);
    assert_eq!(snap.durations("r").len(), 1);
    drop(second);
    let snap = recorder.snap();
    assert!((snap.in_flight("r") + 1.0).abs() < f64::EPSILON);
    assert_eq!(snap.requests("r", "cancelled"), 1);
}

#[tokio::test(start_paused = true)]
async fn custom_classifier_decides_success() {
    let recorder = Recording::start();
    let svc = MetricsLayer::with_route("r")
        .classifier(palisade_core::ErrorsAsFailures)
        .layer(common::scripted(DELAY));
    svc.clone()
        .oneshot(Request::get("/500").body(()).unwrap())
        .await
        .unwrap();
    let _ = svc.oneshot(Request::get("/boom").body(()).unwrap()).await;
    let snap = recorder.snap();
    assert_eq!(snap.requests("r", "success"), 1);
    assert_eq!(snap.requests("r", "failure"), 1);
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

    let recorder = Recording::start();
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
    let snap = recorder.snap();
    assert_eq!(snap.events("breaker", "opened"), 2);
    assert_eq!(snap.events("breaker", "closed"), 1);
    assert_eq!(snap.events("retry", "attempt"), 5);
    // The typed hook saw only breaker events; the last one was "opened".
    assert!((snap.gauge("palisade_breaker_open", &[]) - 1.0).abs() < f64::EPSILON);
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
    use palisade_core::{HandleRejectionsLayer, RateLimited};
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
        let recorder = Recording::start();
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
        let snap = recorder.snap();
        assert_eq!(snap.requests("/users/{id}", "success"), 3);
        assert_eq!(snap.requests("/orders/{id}", "success"), 1);
        assert_eq!(snap.requests("unmatched", "success"), 1); // 404 from the fallback
        // A handler answering 429 itself is a failure by the classifier.
        assert_eq!(snap.requests("/limited", "failure"), 1);
        assert_eq!(snap.requests("/users/1", "success"), 0);
    }

    #[tokio::test]
    async fn overflowing_routes_are_labelled_other() {
        let recorder = Recording::start();
        let app = app(MetricsLayer::new().max_routes(1).unwrap());
        for path in ["/users/1", "/orders/1", "/orders/2", "/users/2"] {
            app.clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
        }
        let snap = recorder.snap();
        assert_eq!(snap.requests("/users/{id}", "success"), 2);
        assert_eq!(snap.requests("other", "success"), 2);
        assert_eq!(snap.requests("/orders/{id}", "success"), 0);
    }
}
