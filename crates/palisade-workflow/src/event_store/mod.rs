//! The event store: append-only streams with optimistic concurrency, and one global order.
//!
//! Every event belongs to a stream (an aggregate's id) and has two numbers:
//!
//! - its **version** in the stream, 1, 2, 3, … without gaps; an append names the version
//!   it expects the stream to be at ([`ExpectedVersion`]) and fails with a typed
//!   [`VersionConflict`](crate::VersionConflict) when someone else wrote first;
//! - its **position** in the store, increasing across all streams in the order appends
//!   committed, which [`read_all`](EventStore::read_all) follows (projections use it as their
//!   checkpoint). Positions increase but may have gaps (PostgreSQL's sequence skips the
//!   numbers of rolled-back appends).
//!
//! Two implementations: [`MemoryEventStore`] (always) and, with feature `postgres`,
//! `PgEventStore` (one table, `UNIQUE (stream, version)`, a `BIGSERIAL` position).

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;

pub use memory::MemoryEventStore;
#[cfg(feature = "postgres")]
pub use postgres::PgEventStore;

/// Longest accepted stream name, in bytes.
pub const MAX_STREAM_LEN: usize = 256;
/// Longest accepted event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;
/// Most events accepted in one append.
pub const MAX_EVENTS_PER_APPEND: usize = 1000;
/// Most events returned by one read (a larger `max` is clamped to it).
pub const MAX_READ_BATCH: usize = 10_000;

/// What an append expects the stream's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be at exactly this version (0 = empty, like `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// The version this expects, if it expects one.
    pub fn version(self) -> Option<u64> {
        match self {
            Self::Any => None,
            Self::NoStream => Some(0),
            Self::Exact(v) => Some(v),
        }
    }
}

/// An event to append: its type name and its JSON payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's type (`"deposited"`), at most [`MAX_EVENT_TYPE_LEN`] bytes.
    pub event_type: String,
    /// The payload.
    pub data: Value,
}

impl NewEvent {
    /// An event of `event_type` with `data`.
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        Self {
            event_type: event_type.into(),
            data,
        }
    }

    /// Serialises `data` into an event of `event_type`.
    pub fn from_serialize(
        event_type: impl Into<String>,
        data: &impl Serialize,
    ) -> Result<Self, StoreError> {
        Ok(Self::new(event_type, serde_json::to_value(data)?))
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The stream it belongs to.
    pub stream: String,
    /// Its version in the stream, from 1.
    pub version: u64,
    /// Its position in the global order, from 1.
    pub position: u64,
    /// The event's type.
    pub event_type: String,
    /// The payload.
    pub data: Value,
}

/// What a successful append reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append (the last appended event's version).
    pub version: u64,
    /// The last appended event's global position.
    pub position: u64,
}

/// An append-only event store. Implementations are cheap to clone and share their state.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at `expected`, atomically: all or none.
    ///
    /// Fails with [`StoreError::Conflict`] if the stream is at another version, and with
    /// [`StoreError::Invalid`] for an empty batch, an empty or over-long stream name or
    /// event type, or more than [`MAX_EVENTS_PER_APPEND`] events.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;

    /// Up to `max` events of `stream` with version `>= from_version`, in version order.
    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Up to `max` events of every stream with position `> after_position`, in global order
    /// (pass 0 to start from the beginning, then the last position seen).
    fn read_all(
        &self,
        after_position: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The stream's current version (0 if it has no events).
    fn stream_version(&self, stream: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Checks an append's arguments against the store's bounds.
pub(crate) fn check_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    check_stream(stream)?;
    if events.is_empty() {
        return Err(StoreError::Invalid("an append needs at least one event"));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::Invalid("too many events in one append"));
    }
    if events
        .iter()
        .any(|e| e.event_type.is_empty() || e.event_type.len() > MAX_EVENT_TYPE_LEN)
    {
        return Err(StoreError::Invalid(
            "event type must be 1 to 128 bytes long",
        ));
    }
    Ok(())
}

/// Checks a stream name: 1 to [`MAX_STREAM_LEN`] bytes.
pub(crate) fn check_stream(stream: &str) -> Result<(), StoreError> {
    if stream.is_empty() || stream.len() > MAX_STREAM_LEN {
        return Err(StoreError::Invalid(
            "stream name must be 1 to 256 bytes long",
        ));
    }
    Ok(())
}
