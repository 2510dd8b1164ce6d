//! The event store contract, run against the memory store (and, from `pg_event_store`,
//! against PostgreSQL).

use std::collections::HashSet;

use palisade_core::rejection::find_rejection;
use palisade_workflow::event_store::MAX_EVENTS_PER_APPEND;
use palisade_workflow::{EventStore, ExpectedVersion, MemoryEventStore, NewEvent, StoreError};
use serde_json::json;

fn ev(n: u64) -> NewEvent {
    NewEvent::new("n", json!({ "n": n }))
}

/// The contract every store keeps; `prefix` keeps streams apart.
pub async fn contract<S: EventStore>(store: &S, prefix: &str) {
    let a = format!("{prefix}-a");
    let b = format!("{prefix}-b");
    let r = store
        .append(&a, ExpectedVersion::NoStream, vec![ev(1), ev(2)])
        .await
        .unwrap();
    assert_eq!(r.version, 2);
    let r2 = store
        .append(&b, ExpectedVersion::Exact(0), vec![ev(10)])
        .await
        .unwrap();
    assert_eq!(r2.version, 1);
    assert!(r2.position > r.position);
    let r3 = store
        .append(&a, ExpectedVersion::Exact(2), vec![ev(3)])
        .await
        .unwrap();
    assert_eq!(r3.version, 3);

    // Conflicts: a stale version, "no stream" on an existing one, a version from the future.
    for expected in [
        ExpectedVersion::Exact(2),
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(9),
    ] {
        let err = store.append(&a, expected, vec![ev(99)]).await.unwrap_err();
        let StoreError::Conflict(c) = &err else {
            panic!("expected a conflict, got {err:?}")
        };
        assert_eq!(c.actual, 3);
        assert_eq!(c.expected, expected.version());
        let boxed = err.into_box_error();
        let rejection = find_rejection(&*boxed).expect("renders as a rejection");
        assert_eq!(rejection.status(), 409);
        assert_eq!(rejection.kind(), "version_conflict");
    }
    assert_eq!(store.stream_version(&a).await.unwrap(), 3);
    store
        .append(&a, ExpectedVersion::Any, vec![ev(4)])
        .await
        .unwrap();

    let events = store.read_stream(&a, 1, 100).await.unwrap();
    let ns: Vec<u64> = events
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [1, 2, 3, 4]);
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let from3 = store.read_stream(&a, 3, 1).await.unwrap();
    assert_eq!(from3.len(), 1);
    assert_eq!(from3[0].version, 3);
    assert!(
        store
            .read_stream(&format!("{prefix}-none"), 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .stream_version(&format!("{prefix}-none"))
            .await
            .unwrap(),
        0
    );

    // Global order: positions strictly increase, and the streams interleave as appended.
    let all = store.read_all(0, 1000).await.unwrap();
    let mine: Vec<_> = all
        .iter()
        .filter(|e| e.stream.starts_with(prefix))
        .collect();
    assert_eq!(
        mine.iter()
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 10, 3, 4]
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let after = store.read_all(mine[2].position, 2).await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].position, mine[3].position);

    // Bad input is refused, never a panic.
    for (stream, events) in [
        (String::new(), vec![ev(1)]),
        ("x".repeat(257), vec![ev(1)]),
        (a.clone(), vec![]),
        (a.clone(), vec![NewEvent::new("", json!(null))]),
        (
            a.clone(),
            (0..=MAX_EVENTS_PER_APPEND as u64).map(ev).collect(),
        ),
    ] {
        let err = store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }
    assert_eq!(store.stream_version(&a).await.unwrap(), 4);
}

/// `writers` tasks each append `per_writer` events to one shared stream with the version
/// they read (retrying on conflict) and one to a stream of their own: no event is lost or
/// duplicated, versions have no gaps, and the global order holds every event once.
pub async fn concurrent_writers<S: EventStore>(stores: Vec<S>, prefix: &str, per_writer: u64) {
    let shared = format!("{prefix}-shared");
    let writers = stores.len() as u64;
    let mut tasks = Vec::new();
    for (w, store) in stores.iter().cloned().enumerate() {
        let shared = shared.clone();
        let own = format!("{prefix}-own-{w}");
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0_u64;
            for i in 0..per_writer {
                let id = w as u64 * 1_000_000 + i;
                loop {
                    let v = store.stream_version(&shared).await.unwrap();
                    match store
                        .append(&shared, ExpectedVersion::Exact(v), vec![ev(id)])
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict(_)) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                store
                    .append(&own, ExpectedVersion::Exact(i), vec![ev(id)])
                    .await
                    .unwrap();
            }
            conflicts
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = &stores[0];
    let events = store.read_stream(&shared, 1, 100_000).await.unwrap();
    assert_eq!(events.len() as u64, writers * per_writer);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1)
    );
    let ids: HashSet<u64> = events
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len() as u64, writers * per_writer, "duplicated event");
    let all = store.read_all(0, 100_000).await.unwrap();
    let mine: Vec<_> = all
        .iter()
        .filter(|e| e.stream.starts_with(prefix))
        .collect();
    assert_eq!(mine.len() as u64, 2 * writers * per_writer);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    // Each writer's own stream, read in global order, is in version order.
    for w in 0..writers {
        let own = format!("{prefix}-own-{w}");
        let versions: Vec<u64> = mine
            .iter()
            .filter(|e| e.stream == own)
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, (1..=per_writer).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    let store = MemoryEventStore::new();
    contract(&store, "t").await;
    assert_eq!(store.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_loses_nothing_under_concurrent_writers() {
    let store = MemoryEventStore::new();
    concurrent_writers(vec![store.clone(); 16], "c", 50).await;
    assert_eq!(store.len(), 16 * 50 * 2);
}
