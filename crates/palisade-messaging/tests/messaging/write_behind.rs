//! Write-behind on paused time with an in-memory store.

use palisade_messaging::write_behind::{WriteBehind, WriteBehindConfig, WriteBehindError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{ServiceExt, service_fn};

type Batches = Arc<Mutex<Vec<Vec<(u32, u64)>>>>;

/// A store recording each batch; the first `fail_first` calls fail; each call takes `delay`.
fn store(
    batches: Batches,
    fail_first: u32,
    delay: Duration,
) -> impl tower::Service<
    Vec<(u32, u64)>,
    Response = (),
    Error = std::io::Error,
    Future = impl Future<Output = Result<(), std::io::Error>> + Send,
> + Send
+ 'static {
    let calls = Arc::new(AtomicU32::new(0));
    service_fn(move |batch: Vec<(u32, u64)>| {
        let batches = batches.clone();
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            if n < fail_first {
                return Err(std::io::Error::other("store down"));
            }
            batches.lock().unwrap().push(batch);
            Ok(())
        }
    })
}

fn config() -> WriteBehindConfig {
    WriteBehindConfig::new()
        .capacity(100)
        .batch_size(10)
        .flush_interval(Duration::from_millis(100))
        .backoff(Duration::from_millis(10))
}

#[tokio::test(start_paused = true)]
async fn coalesces_per_key_and_flushes_on_the_interval() {
    let batches = Batches::default();
    let (w, worker) =
        WriteBehind::new(store(batches.clone(), 0, Duration::ZERO), &config()).unwrap();
    tokio::spawn(worker.run());
    for (k, v) in [(1, 10), (2, 20), (1, 11), (1, 12)] {
        w.clone().oneshot((k, v)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        batches.lock().unwrap().is_empty(),
        "not before the interval"
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(*batches.lock().unwrap(), vec![vec![(1, 12), (2, 20)]]);
    let s = w.stats();
    assert_eq!(
        (s.accepted, s.coalesced, s.flushed, s.batches, s.queued),
        (4, 2, 2, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_flushes_without_waiting_for_the_interval() {
    let batches = Batches::default();
    let (w, worker) =
        WriteBehind::new(store(batches.clone(), 0, Duration::ZERO), &config()).unwrap();
    tokio::spawn(worker.run());
    for k in 0..25 {
        w.try_write(k, 1).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    let sizes: Vec<usize> = batches.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        vec![10, 10],
        "two full batches at once; 5 wait for the interval"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sizes: Vec<usize> = batches.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
}

#[tokio::test(start_paused = true)]
async fn full_queue_applies_backpressure() {
    let batches = Batches::default();
    let cfg = config().capacity(3).batch_size(3);
    // The store takes 1 s per batch.
    let (w, worker) =
        WriteBehind::new(store(batches.clone(), 0, Duration::from_secs(1)), &cfg).unwrap();
    tokio::spawn(worker.run());
    for k in 0..3 {
        w.try_write(k, 0).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await; // the worker took the batch
    for k in 3..6 {
        w.try_write(k, 0).unwrap();
    }
    assert_eq!(w.try_write(6, 0), Err(WriteBehindError::Full));
    assert_eq!(
        w.try_write(3, 1),
        Ok(()),
        "a queued key coalesces even when full"
    );
    let waiting = tokio::spawn({
        let w = w.clone();
        async move { w.clone().oneshot((6, 0)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "waits for room");
    tokio::time::sleep(Duration::from_millis(600)).await; // first batch stored, second taken
    assert_eq!(waiting.await.unwrap(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn failed_batches_are_retried_then_requeued() {
    let batches = Batches::default();
    // 4 failures: one batch's 3 attempts, then the requeued batch's first attempt.
    let (w, worker) =
        WriteBehind::new(store(batches.clone(), 4, Duration::ZERO), &config()).unwrap();
    tokio::spawn(worker.run());
    w.try_write(1, 1).unwrap();
    tokio::time::sleep(Duration::from_millis(100 + 10 + 20 + 1)).await;
    assert!(batches.lock().unwrap().is_empty());
    assert_eq!(w.stats().failed_attempts, 3);
    assert_eq!(w.stats().queued, 1, "requeued after max_attempts");
    w.try_write(1, 2).unwrap(); // a newer value replaces the requeued one
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*batches.lock().unwrap(), vec![vec![(1, 2)]]);
    assert_eq!(w.stats().failed_attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn no_acknowledged_write_is_lost_across_shutdown() {
    let batches = Batches::default();
    let cfg = config()
        .capacity(50)
        .batch_size(7)
        .flush_interval(Duration::from_secs(3600));
    // A slow, flaky store: the first 2 calls fail.
    let (w, worker) =
        WriteBehind::new(store(batches.clone(), 2, Duration::from_millis(5)), &cfg).unwrap();
    let worker = tokio::spawn(worker.run());
    let mut expected = HashMap::new();
    let mut writers = Vec::new();
    for t in 0..4u64 {
        let w = w.clone();
        writers.push(tokio::spawn(async move {
            let mut last = HashMap::new();
            for i in 0..500u64 {
                let key = ((i * 7 + t * 13) % 120) as u32;
                let value = t * 1_000_000 + i;
                w.clone().oneshot((key, value)).await.unwrap();
                last.insert(key, value);
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            last
        }));
    }
    for writer in writers {
        for (k, v) in writer.await.unwrap() {
            // Keys written by several writers: keep the largest value's writer order below.
            expected.entry(k).or_insert_with(Vec::new).push(v);
        }
    }
    w.shutdown().await.unwrap();
    worker.await.unwrap();
    // The store's final state: replay the batches in order.
    let mut stored = HashMap::new();
    for batch in batches.lock().unwrap().iter() {
        for &(k, v) in batch {
            stored.insert(k, v);
        }
    }
    assert_eq!(stored.len(), expected.len(), "every key reached the store");
    for (k, finals) in &expected {
        assert!(
            finals.contains(&stored[k]),
            "key {k}: stored value is one writer's last write"
        );
    }
    let s = w.stats();
    assert_eq!(s.accepted, 2000);
    assert_eq!(s.queued, 0);
    assert_eq!(s.lost, 0);
    assert_eq!(
        s.flushed + s.coalesced,
        2000,
        "every acknowledged write stored or coalesced"
    );
    assert_eq!(w.try_write(1, 1), Err(WriteBehindError::Closed));
    assert_eq!(
        w.clone().oneshot((1, 1)).await,
        Err(WriteBehindError::Closed)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_writes_a_dead_store_lost() {
    let batches = Batches::default();
    let (w, worker) =
        WriteBehind::new(store(batches, u32::MAX, Duration::ZERO), &config()).unwrap();
    tokio::spawn(worker.run());
    for k in 0..3 {
        w.try_write(k, 0).unwrap();
    }
    assert_eq!(w.shutdown().await, Err(WriteBehindError::Lost(3)));
}

#[test]
fn config_is_checked() {
    let s = || store(Batches::default(), 0, Duration::ZERO);
    let e = WriteBehind::<u32, u64>::new(s(), &config().capacity(0)).unwrap_err();
    assert_eq!(e.field(), "write_behind.capacity");
    let e = WriteBehind::<u32, u64>::new(s(), &config().batch_size(101)).unwrap_err();
    assert_eq!(e.field(), "write_behind.batch_size");
    let e =
        WriteBehind::<u32, u64>::new(s(), &config().flush_interval(Duration::ZERO)).unwrap_err();
    assert_eq!(e.field(), "write_behind.flush_interval");
    let e = WriteBehind::<u32, u64>::new(s(), &config().max_attempts(0)).unwrap_err();
    assert_eq!(e.field(), "write_behind.max_attempts");
}
