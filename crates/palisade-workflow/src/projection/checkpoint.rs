//! Checkpoint stores: the last global position a projection has applied.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::StoreError;

/// Where projection checkpoints are kept.
pub trait CheckpointStore: Clone + Send + Sync + 'static {
    /// The saved position of `name`, 0 if none.
    fn load(&self, name: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Saves `position` for `name`.
    fn save(
        &self,
        name: &str,
        position: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Checkpoints in process memory. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpointStore {
    inner: Arc<Mutex<HashMap<String, u64>>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self, name: &str) -> Result<u64, StoreError> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(name).copied().unwrap_or(0))
    }
    async fn save(&self, name: &str, position: u64) -> Result<(), StoreError> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(name.to_owned(), position);
        Ok(())
    }
}

#[cfg(feature = "postgres")]
pub use pg::PgCheckpointStore;

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;

    use tokio_postgres::{Client, Statement};

    use super::{CheckpointStore, StoreError};
    use crate::pg::{Schema, to_i64, to_u64};

    /// Checkpoints in the `checkpoints` table (see [`migrate`](crate::pg::migrate)); one
    /// round trip per load or save.
    #[derive(Clone)]
    pub struct PgCheckpointStore {
        client: Arc<Client>,
        load: Statement,
        save: Statement,
    }

    impl std::fmt::Debug for PgCheckpointStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PgCheckpointStore").finish_non_exhaustive()
        }
    }

    impl PgCheckpointStore {
        /// Prepares the statements on `client` for `schema`.
        pub async fn new(client: Arc<Client>, schema: &Schema) -> Result<Self, StoreError> {
            let s = schema.as_str();
            let load = client
                .prepare(&format!(
                    "SELECT position FROM {s}.checkpoints WHERE name = $1"
                ))
                .await?;
            let save = client
                .prepare(&format!(
                    "INSERT INTO {s}.checkpoints (name, position) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position"
                ))
                .await?;
            Ok(Self { client, load, save })
        }
    }

    impl CheckpointStore for PgCheckpointStore {
        async fn load(&self, name: &str) -> Result<u64, StoreError> {
            let row = self.client.query_opt(&self.load, &[&name]).await?;
            Ok(row.map_or(0, |r| to_u64(r.get(0))))
        }
        async fn save(&self, name: &str, position: u64) -> Result<(), StoreError> {
            let p = to_i64(position)?;
            self.client.execute(&self.save, &[&name, &p]).await?;
            Ok(())
        }
    }
}
