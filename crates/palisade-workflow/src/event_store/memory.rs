//! The in-memory event store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{
    AppendResult, EventStore, ExpectedVersion, MAX_READ_BATCH, NewEvent, RecordedEvent,
    check_append, check_stream,
};
use crate::error::{StoreError, VersionConflict};

/// An event store in process memory: one `Vec` in global order and, per stream, the indices
/// of its events. Clones share the store. Appends take a short `std` lock (never across an
/// `.await`); nothing is ever evicted, so it is for tests, benchmarks and single-process use.
#[derive(Debug, Clone, Default)]
pub struct MemoryEventStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    all: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<usize>>,
}

impl MemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events the store holds.
    pub fn len(&self) -> usize {
        self.lock().all.len()
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated: appends push
        // to both vectors only after every check passed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append_now(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(stream, &events)?;
        let mut inner = self.lock();
        let Inner { all, streams } = &mut *inner;
        let current = streams.get(stream).map_or(0, |v| v.len() as u64);
        if let Some(want) = expected.version()
            && want != current
        {
            return Err(VersionConflict::new(stream, Some(want), current).into());
        }
        let indices = streams.entry(stream.to_owned()).or_default();
        let mut version = current;
        for event in events {
            version += 1;
            indices.push(all.len());
            all.push(RecordedEvent {
                stream: stream.to_owned(),
                version,
                position: all.len() as u64 + 1,
                event_type: event.event_type,
                data: event.data,
            });
        }
        Ok(AppendResult {
            version,
            position: all.len() as u64,
        })
    }
}

impl EventStore for MemoryEventStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append_now(stream, expected, events)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream(stream)?;
        let inner = self.lock();
        let Some(indices) = inner.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(indices
            .iter()
            .skip(skip)
            .take(max.min(MAX_READ_BATCH))
            .map(|&i| inner.all[i].clone())
            .collect())
    }

    async fn read_all(
        &self,
        after_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.lock();
        let skip = usize::try_from(after_position).unwrap_or(usize::MAX);
        Ok(inner
            .all
            .iter()
            .skip(skip)
            .take(max.min(MAX_READ_BATCH))
            .cloned()
            .collect())
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        check_stream(stream)?;
        Ok(self
            .lock()
            .streams
            .get(stream)
            .map_or(0, |v| v.len() as u64))
    }
}
