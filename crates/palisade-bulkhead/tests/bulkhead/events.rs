//! Events: admitted, queued, rejected.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_bulkhead::{BulkheadEvent, BulkheadLayer, RejectReason};
use palisade_core::{BoxError, BulkheadFull};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn admitted_queued_rejected_in_order() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_queue(1)
        .max_queue_wait(Duration::from_secs(10))
        .release_on_response()
        .on_event(move |e| ev.lock().unwrap().push(e.clone()))
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
        *events.lock().unwrap(),
        [
            BulkheadEvent::Admitted {
                lane: 0,
                in_flight: 1
            },
            BulkheadEvent::Queued { lane: 0, depth: 1 },
            BulkheadEvent::Rejected {
                lane: 0,
                reason: RejectReason::Full
            },
            BulkheadEvent::Admitted {
                lane: 0,
                in_flight: 1
            },
        ]
    );
}
