//! Snapshot stores: an aggregate's serialised state at a version.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use crate::error::StoreError;

/// An aggregate's state at a stream version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The version the state reflects.
    pub version: u64,
    /// The serialised state.
    pub state: Value,
}

/// Where snapshots are kept. A save never moves a snapshot backwards.
pub trait SnapshotStore: Clone + Send + Sync + 'static {
    /// `false` only for [`NoSnapshots`], so that the repository skips serialising.
    const ENABLED: bool = true;
    /// The latest snapshot of `stream`.
    fn load(
        &self,
        stream: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;
    /// Keeps `snapshot` unless a newer one is stored.
    fn save(
        &self,
        stream: &str,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// No snapshots: every load folds the whole stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSnapshots;

impl SnapshotStore for NoSnapshots {
    const ENABLED: bool = false;
    async fn load(&self, _stream: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(None)
    }
    async fn save(&self, _stream: &str, _snapshot: Snapshot) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Snapshots in process memory (one per stream). Clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemorySnapshotStore {
    inner: Arc<Mutex<HashMap<String, Snapshot>>>,
}

impl MemorySnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// The version of the snapshot stored for `stream`.
    pub fn version(&self, stream: &str) -> Option<u64> {
        self.lock().get(stream).map(|s| s.version)
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Snapshot>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SnapshotStore for MemorySnapshotStore {
    async fn load(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock().get(stream).cloned())
    }
    async fn save(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut map = self.lock();
        match map.get(stream) {
            Some(old) if old.version >= snapshot.version => {}
            _ => {
                map.insert(stream.to_owned(), snapshot);
            }
        }
        Ok(())
    }
}

#[cfg(feature = "postgres")]
pub use pg::PgSnapshotStore;

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;

    use tokio_postgres::{Client, Statement};

    use super::{Snapshot, SnapshotStore, StoreError};
    use crate::pg::{Schema, to_i64, to_u64};

    /// Snapshots in the `snapshots` table (see [`migrate`](crate::pg::migrate)); one round
    /// trip per load or save.
    #[derive(Clone)]
    pub struct PgSnapshotStore {
        client: Arc<Client>,
        load: Statement,
        save: Statement,
    }

    impl std::fmt::Debug for PgSnapshotStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PgSnapshotStore").finish_non_exhaustive()
        }
    }

    impl PgSnapshotStore {
        /// Prepares the statements on `client` for `schema`.
        pub async fn new(client: Arc<Client>, schema: &Schema) -> Result<Self, StoreError> {
            let s = schema.as_str();
            let load = client
                .prepare(&format!(
                    "SELECT version, state FROM {s}.snapshots WHERE stream = $1"
                ))
                .await?;
            let save = client
                .prepare(&format!(
                    "INSERT INTO {s}.snapshots (stream, version, state) VALUES ($1, $2, $3) \
                     ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state \
                     WHERE {s}.snapshots.version < EXCLUDED.version"
                ))
                .await?;
            Ok(Self { client, load, save })
        }
    }

    impl SnapshotStore for PgSnapshotStore {
        async fn load(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
            let row = self.client.query_opt(&self.load, &[&stream]).await?;
            Ok(row.map(|r| Snapshot {
                version: to_u64(r.get(0)),
                state: r.get(1),
            }))
        }
        async fn save(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
            let v = to_i64(snapshot.version)?;
            self.client
                .execute(&self.save, &[&stream, &v, &snapshot.state])
                .await?;
            Ok(())
        }
    }
}
