//! Aggregates: state rebuilt by folding a stream's events, with snapshots every N events.
//!
//! An [`Aggregate`] says how an event changes the state ([`apply`](Aggregate::apply)) and
//! which events a command produces ([`decide`](Aggregate::decide)). An
//! [`AggregateRepository`] loads one by reading its latest snapshot (if a
//! [`SnapshotStore`] is set) and folding the events after it, and appends new events with
//! the version it loaded as the expected version, so that two writers deciding on the same
//! state cannot both win.

use std::num::NonZeroU64;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::event_store::{
    AppendResult, EventStore, ExpectedVersion, MAX_READ_BATCH, NewEvent, RecordedEvent,
};

mod snapshot;

#[cfg(feature = "postgres")]
pub use snapshot::PgSnapshotStore;
pub use snapshot::{MemorySnapshotStore, NoSnapshots, Snapshot, SnapshotStore};

/// Largest accepted snapshot interval.
pub const MAX_SNAPSHOT_EVERY: u64 = 1_000_000;

/// A consistency boundary whose state is the fold of its events.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What happened; stored as JSON.
    type Event: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What is asked.
    type Command: Send + 'static;
    /// Why a command is refused (boxed into the handler's error).
    type Error: Into<palisade_core::BoxError> + Send + 'static;

    /// The stored type name of `event` (`"deposited"`), 1 to 128 bytes.
    fn event_type(event: &Self::Event) -> &'static str;
    /// Folds one event into the state. Must not fail: the event already happened.
    fn apply(&mut self, event: Self::Event);
    /// The events `command` produces in this state, or why it is refused.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// An aggregate as loaded: its state and the stream version it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<A> {
    /// The folded state.
    pub state: A,
    /// The stream's version the state reflects (0: no events).
    pub version: u64,
}

/// Loads and saves aggregates of type `A` in an [`EventStore`], with optional snapshots.
#[derive(Debug, Clone)]
pub struct AggregateRepository<S, N = NoSnapshots> {
    store: S,
    snapshots: N,
    every: NonZeroU64,
}

impl<S: EventStore> AggregateRepository<S, NoSnapshots> {
    /// A repository over `store`, without snapshots.
    pub fn new(store: S) -> Self {
        Self {
            store,
            snapshots: NoSnapshots,
            every: NonZeroU64::MIN,
        }
    }
}

impl<S: EventStore, N: SnapshotStore> AggregateRepository<S, N> {
    /// Keeps a snapshot in `snapshots` each time a save crosses a multiple of `every`
    /// events (clamped to 1..=[`MAX_SNAPSHOT_EVERY`]).
    pub fn with_snapshots<M: SnapshotStore>(
        self,
        snapshots: M,
        every: u64,
    ) -> AggregateRepository<S, M> {
        let every = NonZeroU64::new(every.clamp(1, MAX_SNAPSHOT_EVERY)).unwrap_or(NonZeroU64::MIN);
        AggregateRepository {
            store: self.store,
            snapshots,
            every,
        }
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads the aggregate of stream `id`: the latest snapshot, then every later event.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let mut loaded = match self.snapshots.load(id).await? {
            Some(s) => Loaded {
                state: serde_json::from_value(s.state)?,
                version: s.version,
            },
            None => Loaded {
                state: A::default(),
                version: 0,
            },
        };
        loop {
            let batch = self
                .store
                .read_stream(id, loaded.version + 1, MAX_READ_BATCH)
                .await?;
            let n = batch.len();
            for RecordedEvent { version, data, .. } in batch {
                loaded.state.apply(serde_json::from_value(data)?);
                loaded.version = version;
            }
            if n < MAX_READ_BATCH {
                return Ok(loaded);
            }
        }
    }

    /// Appends `events` to `id` expecting it at `loaded.version`, folds them into
    /// `loaded`, and snapshots when a multiple of the interval was crossed. The snapshot
    /// is best effort: its failure is ignored (the next load folds a few more events).
    pub async fn save<A: Aggregate>(
        &self,
        id: &str,
        loaded: &mut Loaded<A>,
        events: Vec<A::Event>,
    ) -> Result<AppendResult, StoreError> {
        let new: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent::from_serialize(A::event_type(e), e))
            .collect::<Result<_, _>>()?;
        let result = self
            .store
            .append(id, ExpectedVersion::Exact(loaded.version), new)
            .await?;
        let before = loaded.version;
        for e in events {
            loaded.state.apply(e);
        }
        loaded.version = result.version;
        if N::ENABLED
            && before / self.every.get() != result.version / self.every.get()
            && let Ok(state) = serde_json::to_value(&loaded.state)
        {
            let snapshot = Snapshot {
                version: result.version,
                state,
            };
            let _ = self.snapshots.save(id, snapshot).await;
        }
        Ok(result)
    }
}
