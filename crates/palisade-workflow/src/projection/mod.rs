//! Projections: read models built by following the store's global order.
//!
//! A [`ProjectionRunner`] reads events after its [checkpoint](CheckpointStore), hands each
//! to the [`Projection`] in position order, and saves the last position after each batch.
//! A process that stops between a batch and its checkpoint replays that batch on restart:
//! delivery is **at least once**, so projections must be idempotent (keep the last applied
//! position, or upsert).

use std::future::Future;
use std::time::Duration;

use palisade_core::BoxError;

use crate::event_store::{EventStore, MAX_READ_BATCH, RecordedEvent};

mod checkpoint;

#[cfg(feature = "postgres")]
pub use checkpoint::PgCheckpointStore;
pub use checkpoint::{CheckpointStore, MemoryCheckpointStore};

/// A read model fed with events in global order.
pub trait Projection: Send {
    /// Applies one event. An error stops the runner before the checkpoint moves past it.
    fn apply(&mut self, event: &RecordedEvent)
    -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Feeds every event of `stream` to `projection`, in version order (a one-off replay, no
/// checkpoint). Returns how many events were applied.
pub async fn replay_stream<S: EventStore, P: Projection>(
    store: &S,
    stream: &str,
    projection: &mut P,
) -> Result<u64, BoxError> {
    let mut next = 1;
    let mut applied = 0;
    loop {
        let batch = store.read_stream(stream, next, MAX_READ_BATCH).await?;
        let n = batch.len();
        for event in &batch {
            projection.apply(event).await?;
            next = event.version + 1;
            applied += 1;
        }
        if n < MAX_READ_BATCH {
            return Ok(applied);
        }
    }
}

/// Runs a [`Projection`] over an [`EventStore`]'s global order with a persisted checkpoint
/// named `name`.
#[derive(Debug)]
pub struct ProjectionRunner<S, P, C> {
    store: S,
    projection: P,
    checkpoints: C,
    name: String,
    batch: usize,
}

impl<S: EventStore, P: Projection, C: CheckpointStore> ProjectionRunner<S, P, C> {
    /// A runner reading batches of 100 events.
    pub fn new(store: S, projection: P, checkpoints: C, name: impl Into<String>) -> Self {
        Self {
            store,
            projection,
            checkpoints,
            name: name.into(),
            batch: 100,
        }
    }

    /// Events read per batch (and per checkpoint write), clamped to 1..=10 000.
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.clamp(1, MAX_READ_BATCH);
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, consuming the runner.
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// Applies every event after the checkpoint, a batch at a time, saving the checkpoint
    /// after each batch. Returns how many events were applied.
    pub async fn catch_up(&mut self) -> Result<u64, BoxError> {
        let mut position = self.checkpoints.load(&self.name).await?;
        let mut applied = 0;
        loop {
            let batch = self.store.read_all(position, self.batch).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                return Ok(applied);
            };
            for event in &batch {
                self.projection.apply(event).await?;
                applied += 1;
            }
            position = last;
            self.checkpoints.save(&self.name, position).await?;
        }
    }

    /// Catches up, then polls every `interval` (clamped to at least 1 ms), forever or until
    /// an error, which it returns.
    pub async fn run(&mut self, interval: Duration) -> BoxError {
        let interval = interval.max(Duration::from_millis(1));
        loop {
            if let Err(e) = self.catch_up().await {
                return e;
            }
            tokio::time::sleep(interval).await;
        }
    }
}
