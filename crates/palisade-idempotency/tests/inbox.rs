//! Inbox mode: each message id processed once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use palisade_core::IdempotencyConflict;
use palisade_idempotency::{InboxLayer, InboxOutcome, MemoryStore, Store};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use tower::{Layer, ServiceExt, service_fn};

/// Delivers `copies` of each of `ids` ids in random order, concurrently, redelivering on
/// conflict (as a broker does for an unacknowledged message). Returns the effect count per id
/// and the number of duplicates acknowledged.
pub(crate) async fn deliver<St: Store>(
    store: St,
    ids: u32,
    copies: u32,
    prefix: &str,
) -> (HashMap<u32, u32>, usize) {
    let effects = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
    let e = effects.clone();
    let handler = service_fn(move |msg: (u32, String)| {
        let e = e.clone();
        async move {
            tokio::task::yield_now().await; // let duplicates overlap with the original
            *e.lock().unwrap().entry(msg.0).or_default() += 1;
            Ok::<_, std::io::Error>(msg.1.len())
        }
    });
    let svc = InboxLayer::new(store, |m: &(u32, String)| format!("order-{}", m.0))
        .prefix(prefix)
        .layer(handler);
    let mut deliveries: Vec<u32> = (0..ids)
        .flat_map(|id| std::iter::repeat_n(id, copies as usize))
        .collect();
    deliveries.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    let mut tasks = Vec::new();
    for id in deliveries {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match svc.clone().oneshot((id, format!("payload {id}"))).await {
                    Ok(outcome) => return outcome.is_duplicate(),
                    Err(e) if e.is::<IdempotencyConflict>() => tokio::task::yield_now().await,
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }));
    }
    let mut duplicates = 0;
    for t in tasks {
        if t.await.unwrap() {
            duplicates += 1;
        }
    }
    let effects = effects.lock().unwrap().clone();
    (effects, duplicates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_deliveries_of_thousand_ids_have_thousand_effects() {
    let (effects, duplicates) = deliver(MemoryStore::new(), 1000, 10, "inbox:").await;
    assert_eq!(effects.len(), 1000);
    assert!(effects.values().all(|&n| n == 1), "every id exactly once");
    assert_eq!(duplicates, 9000);
}

#[tokio::test]
async fn failure_releases_the_id_for_redelivery() {
    let attempts = Arc::new(Mutex::new(0));
    let a = attempts.clone();
    let handler = service_fn(move |_msg: u32| {
        let a = a.clone();
        async move {
            let mut n = a.lock().unwrap();
            *n += 1;
            if *n == 1 {
                Err::<u32, std::io::Error>(std::io::Error::other("transient"))
            } else {
                Ok(*n)
            }
        }
    });
    let svc = InboxLayer::new(MemoryStore::new(), |m: &u32| m.to_string()).layer(handler);
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap(),
        InboxOutcome::Processed(2)
    );
    assert_eq!(svc.oneshot(1).await.unwrap(), InboxOutcome::Duplicate);
    assert_eq!(*attempts.lock().unwrap(), 2);
}

/// Issue #15 item 4: the inbox renews its lease while the consumer runs, so a consumer
/// slower than the lease does not let a redelivery process the message again.
#[tokio::test(start_paused = true)]
async fn slow_consumer_keeps_its_lease() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    let effects = Arc::new(AtomicUsize::new(0));
    let e = effects.clone();
    let handler = service_fn(move |_msg: u32| {
        let e = e.clone();
        async move {
            e.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, std::io::Error>(())
        }
    });
    let svc = InboxLayer::new(MemoryStore::new(), |m: &u32| m.to_string())
        .lease(Duration::from_secs(10))
        .layer(handler);
    let first = tokio::spawn(svc.clone().oneshot(7));
    while effects.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(11)).await;
        let err = svc.clone().oneshot(7).await.unwrap_err();
        assert!(err.is::<IdempotencyConflict>(), "{err}");
    }
    assert_eq!(first.await.unwrap().unwrap(), InboxOutcome::Processed(()));
    assert_eq!(
        svc.clone().oneshot(7).await.unwrap(),
        InboxOutcome::Duplicate
    );
    assert_eq!(effects.load(Ordering::SeqCst), 1);
}
