//! Aggregates, snapshots, projections and the CQRS command handler.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use palisade_core::BoxError;
use palisade_core::rejection::find_rejection;
use palisade_workflow::aggregate::{MemorySnapshotStore, Snapshot, SnapshotStore};
use palisade_workflow::projection::{CheckpointStore, MemoryCheckpointStore, replay_stream};
use palisade_workflow::{
    AggregateRepository, AppendResult, Command, CommandHandler, EventStore, ExpectedVersion,
    Loaded, MemoryEventStore, NewEvent, Projection, ProjectionRunner, RecordedEvent, StoreError,
};
use serde_json::json;
use tower::ServiceExt;

use crate::bank::{Account, AccountCommand, AccountEvent};

/// Snapshots every 3 events: after 7 deposits the snapshot is at 6, and a load starts from
/// the snapshot (a doctored one proves it), then folds the rest.
pub async fn snapshots_every_n<S: EventStore, N: SnapshotStore>(store: S, snaps: N, id: &str) {
    let repo = AggregateRepository::new(store).with_snapshots(snaps.clone(), 3);
    let mut acc: Loaded<Account> = repo.load(id).await.unwrap();
    for amount in 1..=7 {
        repo.save(id, &mut acc, vec![AccountEvent::Deposited { amount }])
            .await
            .unwrap();
    }
    assert_eq!(acc.version, 7);
    assert_eq!(acc.state.balance, 28);
    let snap = snaps.load(id).await.unwrap().unwrap();
    assert_eq!(snap.version, 6);
    assert_eq!(snap.state, json!({ "balance": 21, "applied": 6 }));
    let loaded: Loaded<Account> = repo.load(id).await.unwrap();
    assert_eq!(loaded, acc);
    // An older snapshot never replaces a newer one.
    snaps
        .save(
            id,
            Snapshot {
                version: 3,
                state: json!({ "balance": 0, "applied": 0 }),
            },
        )
        .await
        .unwrap();
    assert_eq!(snaps.load(id).await.unwrap().unwrap().version, 6);
    // A load starts at the snapshot: doctor it and see the doctored balance plus event 7.
    let doctored = Snapshot {
        version: 6,
        state: json!({ "balance": 1000, "applied": 6 }),
    };
    let fresh = MemorySnapshotStore::new();
    fresh.save(id, doctored).await.unwrap();
    let repo2 = AggregateRepository::new(repo.store().clone()).with_snapshots(fresh, 3);
    let l: Loaded<Account> = repo2.load(id).await.unwrap();
    assert_eq!((l.state.balance, l.state.applied, l.version), (1007, 7, 7));
}

#[tokio::test]
async fn memory_snapshots_every_n() {
    snapshots_every_n(MemoryEventStore::new(), MemorySnapshotStore::new(), "acc-1").await;
}

#[tokio::test]
async fn repository_refuses_a_stale_save() {
    let repo = AggregateRepository::new(MemoryEventStore::new());
    let mut a: Loaded<Account> = repo.load("x").await.unwrap();
    let mut b: Loaded<Account> = repo.load("x").await.unwrap();
    repo.save("x", &mut a, vec![AccountEvent::Deposited { amount: 5 }])
        .await
        .unwrap();
    let err = repo
        .save("x", &mut b, vec![AccountEvent::Deposited { amount: 7 }])
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(
        b.version, 0,
        "a refused save leaves the loaded state as it was"
    );
    let l: Loaded<Account> = repo.load("x").await.unwrap();
    assert_eq!(l.state.balance, 5);
}

/// A store where "another writer" appends to the stream just before our first append.
#[derive(Clone)]
struct RacingStore {
    inner: MemoryEventStore,
    race: Arc<AtomicBool>,
}

impl EventStore for RacingStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        if self.race.swap(false, Ordering::SeqCst) {
            let other =
                NewEvent::from_serialize("deposited", &AccountEvent::Deposited { amount: 100 })?;
            self.inner
                .append(stream, ExpectedVersion::Any, vec![other])
                .await?;
        }
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        s: &str,
        f: u64,
        m: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(s, f, m).await
    }
    async fn read_all(&self, a: u64, m: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(a, m).await
    }
    async fn stream_version(&self, s: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(s).await
    }
}

#[tokio::test]
async fn command_handler_loads_decides_and_appends() {
    let store = MemoryEventStore::new();
    let handler = CommandHandler::<Account, _>::new(AggregateRepository::new(store.clone()));
    let out = handler
        .clone()
        .oneshot(Command::new("acc", AccountCommand::Deposit(50)))
        .await
        .unwrap();
    assert_eq!((out.version, out.appended, out.conflicts), (1, 1, 0));
    let out = handler
        .clone()
        .oneshot(Command::new("acc", AccountCommand::Withdraw(20)))
        .await
        .unwrap();
    assert_eq!(out.version, 2);
    // A refused command appends nothing; its error is the aggregate's.
    let err = handler
        .clone()
        .oneshot(Command::new("acc", AccountCommand::Withdraw(31)))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "insufficient funds");
    let out = handler
        .clone()
        .oneshot(Command::new("acc", AccountCommand::Nothing))
        .await
        .unwrap();
    assert_eq!((out.version, out.appended), (2, 0));
    assert_eq!(store.len(), 2);
    // A bad stream name is an error, not a panic.
    assert!(
        handler
            .oneshot(Command::new("", AccountCommand::Nothing))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn command_handler_retries_a_conflict_then_reports_409() {
    let race = Arc::new(AtomicBool::new(true));
    let store = RacingStore {
        inner: MemoryEventStore::new(),
        race: race.clone(),
    };
    let handler = CommandHandler::<Account, _>::new(AggregateRepository::new(store.clone()));
    // The first append loses the race; the reload sees the other deposit and decides again.
    let out = handler
        .clone()
        .oneshot(Command::new("acc", AccountCommand::Deposit(60)))
        .await
        .map(|o| (o.version, o.appended, o.conflicts));
    assert_eq!(out.unwrap(), (2, 1, 1));

    race.store(true, Ordering::SeqCst);
    let err = handler
        .retry_conflicts(0)
        .oneshot(Command::new("acc", AccountCommand::Deposit(1)))
        .await
        .unwrap_err();
    let rejection = find_rejection(&*err).expect("a rejection");
    assert_eq!(rejection.status(), 409);
    let body = palisade_core::response::problem_json(rejection);
    assert_eq!(body["status"], 409);
    let l: Loaded<Account> = AggregateRepository::new(store).load("acc").await.unwrap();
    assert_eq!((l.state.balance, l.version), (260, 3));
}

/// Balance per stream, and every position it was handed.
#[derive(Debug, Default)]
pub struct Balances {
    pub per_stream: HashMap<String, i64>,
    pub seen: Vec<u64>,
    pub fail_at: Option<u64>,
}

impl Projection for Balances {
    async fn apply(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        if self.fail_at == Some(event.position) {
            return Err("projection failed".into());
        }
        let e: AccountEvent = serde_json::from_value(event.data.clone())?;
        let delta = match e {
            AccountEvent::Deposited { amount } => amount,
            AccountEvent::Withdrawn { amount } => -amount,
        };
        *self.per_stream.entry(event.stream.clone()).or_default() += delta;
        self.seen.push(event.position);
        Ok(())
    }
}

async fn deposit<S: EventStore>(store: &S, stream: &str, amount: i64) -> u64 {
    let e = NewEvent::from_serialize("deposited", &AccountEvent::Deposited { amount }).unwrap();
    store
        .append(stream, ExpectedVersion::Any, vec![e])
        .await
        .unwrap()
        .position
}

/// The runner follows the global order, checkpoints each batch, and a new runner (a
/// restart) continues after the checkpoint; a failed event is delivered again.
pub async fn projection_restarts_from_checkpoint<S: EventStore, C: CheckpointStore>(
    store: S,
    checkpoints: C,
) {
    let mut positions = Vec::new();
    for (i, stream) in ["p-a", "p-b", "p-a", "p-c", "p-b"].iter().enumerate() {
        positions.push(deposit(&store, stream, i as i64 + 1).await);
    }
    let mut runner = ProjectionRunner::new(
        store.clone(),
        Balances::default(),
        checkpoints.clone(),
        "bal",
    )
    .batch(2);
    assert_eq!(runner.catch_up().await.unwrap(), 5);
    assert_eq!(runner.projection().seen, positions);
    assert_eq!(runner.projection().per_stream["p-a"], 4);
    assert_eq!(checkpoints.load("bal").await.unwrap(), positions[4]);
    assert_eq!(runner.catch_up().await.unwrap(), 0);

    // Restart: a fresh projection sees only what came after the checkpoint.
    let p6 = deposit(&store, "p-c", 10).await;
    let p7 = deposit(&store, "p-a", 20).await;
    let p8 = deposit(&store, "p-b", 30).await;
    let failing = Balances {
        fail_at: Some(p8),
        ..Balances::default()
    };
    let mut runner =
        ProjectionRunner::new(store.clone(), failing, checkpoints.clone(), "bal").batch(2);
    assert!(runner.catch_up().await.is_err());
    assert_eq!(runner.projection().seen, [p6, p7]);
    assert_eq!(
        checkpoints.load("bal").await.unwrap(),
        p7,
        "the batch before the failure"
    );

    // Restart after the failure: the failed event is delivered again (at least once).
    let mut runner =
        ProjectionRunner::new(store, Balances::default(), checkpoints.clone(), "bal").batch(2);
    assert_eq!(runner.catch_up().await.unwrap(), 1);
    assert_eq!(runner.projection().seen, [p8]);
    assert_eq!(checkpoints.load("bal").await.unwrap(), p8);
}

#[tokio::test]
async fn memory_projection_restarts_from_checkpoint() {
    projection_restarts_from_checkpoint(MemoryEventStore::new(), MemoryCheckpointStore::new())
        .await;
}

#[tokio::test]
async fn replay_stream_feeds_one_stream_in_order() {
    let store = MemoryEventStore::new();
    deposit(&store, "a", 1).await;
    deposit(&store, "b", 2).await;
    deposit(&store, "a", 3).await;
    let mut p = Balances::default();
    assert_eq!(replay_stream(&store, "a", &mut p).await.unwrap(), 2);
    assert_eq!(p.seen, [1, 3]);
    assert_eq!(p.per_stream.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn run_polls_until_the_projection_fails() {
    let store = MemoryEventStore::new();
    deposit(&store, "a", 1).await;
    let mut runner = ProjectionRunner::new(
        store.clone(),
        Balances {
            fail_at: Some(3),
            ..Balances::default()
        },
        MemoryCheckpointStore::new(),
        "r",
    );
    let task = tokio::spawn(async move {
        let err = runner.run(std::time::Duration::from_secs(1)).await;
        (err.to_string(), runner.into_projection().seen)
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    deposit(&store, "a", 2).await;
    deposit(&store, "a", 3).await;
    let (err, seen) = task.await.unwrap();
    assert_eq!(err, "projection failed");
    assert_eq!(seen, [1, 2]);
}
