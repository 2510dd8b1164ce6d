//! The PostgreSQL event store.

use std::sync::Arc;

use serde_json::Value;
use tokio_postgres::{Client, Row, Statement};

use super::{
    AppendResult, EventStore, ExpectedVersion, MAX_READ_BATCH, NewEvent, RecordedEvent,
    check_append, check_stream,
};
use crate::error::{StoreError, VersionConflict};
use crate::pg::{Schema, to_i64, to_u64};

/// An event store in one PostgreSQL table (see [`migrate`](crate::pg::migrate)).
///
/// Each append is **one round trip**: a call of the `append_events` function, which takes a
/// transaction-scoped advisory lock, checks the stream's version and inserts the batch.
/// Appends are therefore serialised per schema (positions are then handed out in commit
/// order, so [`read_all`](EventStore::read_all) never skips a late commit); the
/// `UNIQUE (stream, version)` constraint stays as a second guard. Each read is one round
/// trip. Statements are prepared once, in [`PgEventStore::new`].
///
/// Clones share the client. A `tokio_postgres::Client` pipelines concurrent requests over
/// one connection; give several stores their own connections to use several server
/// processes.
#[derive(Clone)]
pub struct PgEventStore {
    client: Arc<Client>,
    append: Statement,
    read_stream: Statement,
    read_all: Statement,
    version: Statement,
}

impl std::fmt::Debug for PgEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventStore").finish_non_exhaustive()
    }
}

impl PgEventStore {
    /// Prepares the store's statements on `client` for `schema` (already
    /// [migrated](crate::pg::migrate)).
    pub async fn new(client: Arc<Client>, schema: &Schema) -> Result<Self, StoreError> {
        let s = schema.as_str();
        let append = client
            .prepare(&format!(
                "SELECT ok, out_version, out_position FROM {s}.append_events($1, $2, $3, $4)"
            ))
            .await?;
        let read_stream = client
            .prepare(&format!(
                "SELECT stream, version, position, event_type, data FROM {s}.events \
                 WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"
            ))
            .await?;
        let read_all = client
            .prepare(&format!(
                "SELECT stream, version, position, event_type, data FROM {s}.events \
                 WHERE position > $1 ORDER BY position LIMIT $2"
            ))
            .await?;
        let version = client
            .prepare(&format!(
                "SELECT coalesce(max(version), 0) FROM {s}.events WHERE stream = $1"
            ))
            .await?;
        Ok(Self {
            client,
            append,
            read_stream,
            read_all,
            version,
        })
    }
}

fn row_to_event(row: &Row) -> RecordedEvent {
    RecordedEvent {
        stream: row.get(0),
        version: to_u64(row.get(1)),
        position: to_u64(row.get(2)),
        event_type: row.get(3),
        data: row.get(4),
    }
}

fn limit(max: usize) -> i64 {
    max.min(MAX_READ_BATCH) as i64
}

impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(stream, &events)?;
        let want = match expected.version() {
            Some(v) => to_i64(v)?,
            None => -1,
        };
        let (types, data): (Vec<String>, Vec<Value>) =
            events.into_iter().map(|e| (e.event_type, e.data)).unzip();
        let rows = match self
            .client
            .query(&self.append, &[&stream, &want, &types, &data])
            .await
        {
            Ok(rows) => rows,
            // The advisory lock makes this unreachable from `PgEventStore`s; a writer that
            // bypasses the function still cannot duplicate a version.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                let actual = self.stream_version(stream).await?;
                return Err(VersionConflict::new(stream, expected.version(), actual).into());
            }
            Err(e) => return Err(e.into()),
        };
        let first = rows
            .first()
            .ok_or(StoreError::Invalid("append returned no row"))?;
        if !first.get::<_, bool>(0) {
            let actual = to_u64(first.get(1));
            return Err(VersionConflict::new(stream, expected.version(), actual).into());
        }
        let mut result = AppendResult {
            version: 0,
            position: 0,
        };
        for row in &rows {
            result.version = result.version.max(to_u64(row.get(1)));
            result.position = result.position.max(to_u64(row.get(2)));
        }
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        check_stream(stream)?;
        let from = to_i64(from_version)?;
        let rows = self
            .client
            .query(&self.read_stream, &[&stream, &from, &limit(max)])
            .await?;
        Ok(rows.iter().map(row_to_event).collect())
    }

    async fn read_all(
        &self,
        after_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = to_i64(after_position)?;
        let rows = self
            .client
            .query(&self.read_all, &[&after, &limit(max)])
            .await?;
        Ok(rows.iter().map(row_to_event).collect())
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        check_stream(stream)?;
        let row = self.client.query_one(&self.version, &[&stream]).await?;
        Ok(to_u64(row.get(0)))
    }
}
