//! Adaptive (AIMD) limit under paused time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_bulkhead::{Aimd, BulkheadEvent, BulkheadLayer};
use palisade_core::BoxError;
use palisade_test::EventRecorder;
use tower::{Layer, ServiceExt, service_fn};

/// The recorded `LimitChanged` events as `(from, to)`.
fn limit_changes(events: &EventRecorder) -> Vec<(usize, usize)> {
    events
        .events::<BulkheadEvent>()
        .iter()
        .filter_map(|e| match e {
            BulkheadEvent::LimitChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn limit_falls_when_latency_rises_and_recovers_when_it_falls() {
    let events = EventRecorder::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(20)
        .max_queue(1_000)
        .max_queue_wait(Duration::from_secs(600))
        .adaptive(Aimd::new(2, 20, Duration::from_millis(100)).backoff(0.5))
        .release_on_response()
        .on_event(events.on())
        .build()
        .unwrap();
    let h = layer.handle();
    assert_eq!(h.limit(), 20);
    let latency_ms = Arc::new(AtomicU64::new(200));
    let l = latency_ms.clone();
    let svc = layer.layer(service_fn(move |(): ()| {
        let ms = l.load(Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, BoxError>(())
        }
    }));
    let round = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| tokio::spawn(svc.clone().oneshot(())))
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
    };

    // Slow calls: multiplicative decrease down to the minimum.
    round(40).await;
    assert_eq!(h.limit(), 2);
    {
        let ev = limit_changes(&events);
        assert_eq!(ev[0], (20, 10));
        assert!(ev.iter().all(|(from, to)| to < from));
    }
    assert_eq!((h.in_flight(), h.queued()), (0, 0));

    // Fast calls again: additive increase back to the maximum, never beyond.
    events.clear();
    latency_ms.store(10, Ordering::SeqCst);
    round(60).await;
    assert_eq!(h.limit(), 20);
    {
        let ev = limit_changes(&events);
        assert_eq!(ev[0], (2, 3));
        assert!(ev.iter().all(|(from, to)| *to == from + 1));
    }
    round(60).await;
    assert_eq!(h.limit(), 20);
    assert_eq!((h.in_flight(), h.queued()), (0, 0));
}

#[test]
fn adaptive_settings_are_checked() {
    let e = BulkheadLayer::builder()
        .adaptive(Aimd::new(5, 4, Duration::from_millis(10)))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "adaptive.max");
    let e = BulkheadLayer::builder()
        .adaptive(Aimd::new(1, 4, Duration::from_millis(10)).backoff(1.0))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "adaptive.backoff");
    for bad in [Duration::ZERO, Duration::from_secs(3_601)] {
        let e = BulkheadLayer::builder()
            .adaptive(Aimd::new(1, 4, bad))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "adaptive.latency_threshold", "{bad:?}");
    }
    let l = BulkheadLayer::builder()
        .max_concurrent(64)
        .adaptive(Aimd::new(1, 8, Duration::from_millis(10)))
        .build()
        .unwrap();
    assert_eq!(
        l.handle().limit(),
        8,
        "initial limit clamped into [min, max]"
    );
}

#[tokio::test(start_paused = true)]
async fn gradient_shrinks_on_a_latency_rise_and_grows_back() {
    let lowest = Arc::new(Mutex::new(usize::MAX));
    let lw = lowest.clone();
    let layer = BulkheadLayer::builder()
        .max_concurrent(50)
        .max_queue(1_000)
        .max_queue_wait(Duration::from_secs(600))
        .adaptive_gradient(palisade_bulkhead::Gradient::new(2, 50).long_window(50))
        .release_on_response()
        .on_event(move |e| {
            if let BulkheadEvent::LimitChanged { to, .. } = e {
                let mut l = lw.lock().unwrap();
                *l = (*l).min(*to);
            }
        })
        .build()
        .unwrap();
    let h = layer.handle();
    let latency_ms = Arc::new(AtomicU64::new(10));
    let l = latency_ms.clone();
    let svc = layer.layer(service_fn(move |(): ()| {
        let ms = l.load(Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, BoxError>(())
        }
    }));
    let round = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| tokio::spawn(svc.clone().oneshot(())))
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
    };

    // Steady latency: the limit stays at its maximum.
    round(200).await;
    assert_eq!(h.limit(), 50);
    assert_eq!(
        *lowest.lock().unwrap(),
        usize::MAX,
        "no change while steady"
    );

    // Latency jumps tenfold: the limit falls well below the maximum.
    latency_ms.store(100, Ordering::SeqCst);
    round(200).await;
    let low = *lowest.lock().unwrap();
    assert!(low < 30, "limit fell to {low}");

    // Latency back to normal: the limit grows back to the maximum.
    latency_ms.store(10, Ordering::SeqCst);
    round(400).await;
    assert_eq!(h.limit(), 50);
    assert_eq!((h.in_flight(), h.queued()), (0, 0));
}
