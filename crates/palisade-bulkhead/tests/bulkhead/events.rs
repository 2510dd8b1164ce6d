//! Events: admitted, queued, rejected.

use std::time::Duration;

use palisade_bulkhead::{BulkheadEvent, BulkheadLayer, RejectReason};
use palisade_core::{BoxError, BulkheadFull};
use palisade_test::EventRecorder;
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn admitted_queued_rejected_in_order() {
    let events = EventRecorder::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_queue(1)
        .max_queue_wait(Duration::from_secs(10))
        .release_on_response()
        .name("db")
        .on_event(events.on())
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, BoxError>(ms)
    }));
    let first = tokio::spawn(svc.clone().oneshot(100));
    tokio::task::yield_now().await;
    let second = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    let err = svc.clone().oneshot(1).await.unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().unwrap();
    assert_eq!(full.retry_after, Some(Duration::from_secs(10)));
    assert_eq!(first.await.unwrap().unwrap(), 100);
    assert_eq!(second.await.unwrap().unwrap(), 1);
    assert_eq!(
        events.events::<BulkheadEvent>(),
        [
            BulkheadEvent::Admitted {
                instance: "db".into(),
                lane: 0,
                in_flight: 1
            },
            BulkheadEvent::Queued {
                instance: "db".into(),
                lane: 0,
                depth: 1
            },
            BulkheadEvent::Rejected {
                instance: "db".into(),
                lane: 0,
                reason: RejectReason::Full
            },
            BulkheadEvent::Admitted {
                instance: "db".into(),
                lane: 0,
                in_flight: 1
            },
        ]
    );
}

#[tokio::test]
async fn the_name_comes_from_code_or_config_and_defaults_to_the_layer() {
    use palisade_bulkhead::BulkheadConfig;
    use palisade_core::Event;
    use palisade_core::event::OccupancyGauge;

    let events = EventRecorder::new();
    let build = |builder: palisade_bulkhead::BulkheadBuilder| {
        let layer = builder
            .release_on_response()
            .on_event(events.on::<BulkheadEvent>())
            .build()
            .unwrap();
        (
            layer.handle(),
            layer.layer(service_fn(|(): ()| async { Ok::<_, BoxError>(()) })),
        )
    };
    let mut config = BulkheadConfig::default();
    config.name = Some("from-config".into());
    let (configured, a) = build(BulkheadLayer::builder().config(config));
    let (coded, b) = build(BulkheadLayer::builder().name("from-code"));
    let (unnamed, c) = build(BulkheadLayer::builder());
    for svc in [a, b, c] {
        svc.oneshot(()).await.unwrap();
    }
    let names: Vec<_> = events
        .events::<BulkheadEvent>()
        .iter()
        .map(|e| e.instance().to_owned())
        .collect();
    assert_eq!(names, ["from-config", "from-code", "bulkhead"]);
    assert_eq!(OccupancyGauge::instance(&configured), "from-config");
    assert_eq!(coded.name(), "from-code");
    assert_eq!(unnamed.name(), "bulkhead");

    let bad = BulkheadLayer::builder()
        .name("two words")
        .build()
        .unwrap_err();
    assert_eq!(bad.field(), "name");
}
