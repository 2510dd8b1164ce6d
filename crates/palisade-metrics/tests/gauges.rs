//! Live gauges sampled from the layers' handles (`watch_bulkhead`, `watch_breaker`), under
//! paused time.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use common::{Recording, Snap};
use palisade_breaker::CircuitBreakerLayer;
use palisade_bulkhead::BulkheadLayer;
use palisade_metrics::{
    BREAKER_STATE, BULKHEAD_IN_FLIGHT, BULKHEAD_QUEUED, watch_breaker, watch_bulkhead,
};
use tokio::time::{Instant, sleep_until};
use tower::{Layer, ServiceExt, service_fn};

const EVERY: Duration = Duration::from_secs(1);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `(in flight, queued)` of bulkhead `db`; panics unless both gauges exist.
fn occupancy(snap: &Snap) -> (f64, f64) {
    let db = [("bulkhead", "db")];
    (
        snap.gauge(BULKHEAD_IN_FLIGHT, &db),
        snap.gauge(BULKHEAD_QUEUED, &db),
    )
}

#[tokio::test(start_paused = true)]
async fn bulkhead_gauges_rise_while_calls_are_held_and_fall_back_to_zero() {
    let recorder = Recording::start();
    let layer = BulkheadLayer::builder()
        .max_concurrent(2)
        .max_queue(1)
        .max_queue_wait(Duration::from_secs(60))
        .release_on_response()
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|(): ()| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, Infallible>(())
    }));
    let start = Instant::now();
    let watcher = watch_bulkhead("db", layer.handle(), EVERY);
    // Registered and set at once, before any call or tick.
    assert_eq!(occupancy(&recorder.snap()), (0.0, 0.0));

    // t = 0: two calls take both slots until t = 5; the third waits for one.
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(())))
        .collect();
    sleep_until(start + secs(1.5)).await; // sampled at t = 1
    assert_eq!(occupancy(&recorder.snap()), (2.0, 1.0));

    // t = 5: the two finish, the queued call runs until t = 10.
    sleep_until(start + secs(6.5)).await; // sampled at t = 6
    assert_eq!(occupancy(&recorder.snap()), (1.0, 0.0));

    // The samples at t = 7..=9 write 1 again (the recorder zeroes a gauge when snapshotted);
    // the one at t = 11 writes 0 over it.
    sleep_until(start + secs(11.5)).await;
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(occupancy(&recorder.snap()), (0.0, 0.0));
    watcher.abort();
    assert!(watcher.await.unwrap_err().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn breaker_state_is_exported_before_any_transition() {
    let recorder = Recording::start();
    let layer = CircuitBreakerLayer::builder()
        .name("payments")
        .build()
        .unwrap();
    let handle = layer.handle();
    let start = Instant::now();
    let watcher = watch_breaker(handle.clone(), EVERY);
    let state = |snap: &Snap| snap.gauge(BREAKER_STATE, &[("breaker", "payments")]) as u8;
    assert_eq!(state(&recorder.snap()), 0, "closed, set at once");

    // No EventMetrics listens: only the sampler reports these.
    handle.force_open();
    sleep_until(start + secs(1.5)).await;
    assert_eq!(state(&recorder.snap()), 4, "forced open");
    handle.disable();
    sleep_until(start + secs(2.5)).await;
    assert_eq!(state(&recorder.snap()), 3, "disabled");
    watcher.abort();
}

#[tokio::test(start_paused = true)]
#[allow(clippy::float_cmp)] // whole numbers of bytes, exact in f64
async fn usage_gauges_follow_the_store_and_name_layer_and_instance() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let recorder = Recording::start();
    let used = Arc::new(AtomicU64::new(512));
    let reading = used.clone();
    let start = Instant::now();
    let watcher = palisade_metrics::watch_usage(
        "cache",
        "pages",
        move || (reading.load(Ordering::SeqCst), Some(4096_u64)),
        EVERY,
    );
    let labels = [("layer", "cache"), ("instance", "pages")];
    let snap = recorder.snap();
    assert_eq!(snap.gauge(palisade_metrics::STORE_BYTES, &labels), 512.0);
    assert_eq!(
        snap.gauge(palisade_metrics::STORE_CAPACITY_BYTES, &labels),
        4096.0
    );
    used.store(2048, Ordering::SeqCst);
    sleep_until(start + secs(1.5)).await;
    assert_eq!(
        recorder
            .snap()
            .gauge(palisade_metrics::STORE_BYTES, &labels),
        2048.0
    );
    watcher.abort();
}
