//! The saga log: where instances are kept between steps and across restarts.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use super::record::{SagaRecord, SagaState};
use crate::error::StoreError;

/// Most records one [`list`](SagaStore::list) returns (a larger `max` is clamped).
pub const MAX_LIST: usize = 10_000;

/// Where saga records are kept. The orchestrator writes a record before and after each
/// action and compensation (two writes per step on the happy path).
pub trait SagaStore: Clone + Send + Sync + 'static {
    /// Stores a new record; `Ok(false)` (and nothing written) if its id exists.
    fn create(&self, record: &SagaRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Replaces the record of `record.id`.
    fn save(&self, record: &SagaRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The record of `id`.
    fn load(&self, id: &str)
    -> impl Future<Output = Result<Option<SagaRecord>, StoreError>> + Send;
    /// Up to `max` records of saga `saga` in `state`, by id.
    fn list(
        &self,
        saga: &str,
        state: SagaState,
        max: usize,
    ) -> impl Future<Output = Result<Vec<SagaRecord>, StoreError>> + Send;
}

/// Saga records in process memory. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemorySagaStore {
    inner: Arc<Mutex<HashMap<String, SagaRecord>>>,
}

impl MemorySagaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SagaRecord>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SagaStore for MemorySagaStore {
    async fn create(&self, record: &SagaRecord) -> Result<bool, StoreError> {
        let mut map = self.lock();
        if map.contains_key(&record.id) {
            return Ok(false);
        }
        map.insert(record.id.clone(), record.clone());
        Ok(true)
    }
    async fn save(&self, record: &SagaRecord) -> Result<(), StoreError> {
        self.lock().insert(record.id.clone(), record.clone());
        Ok(())
    }
    async fn load(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        Ok(self.lock().get(id).cloned())
    }
    async fn list(
        &self,
        saga: &str,
        state: SagaState,
        max: usize,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        let map = self.lock();
        let mut out: Vec<SagaRecord> = map
            .values()
            .filter(|r| r.saga == saga && r.state == state)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.truncate(max.min(MAX_LIST));
        Ok(out)
    }
}

#[cfg(feature = "postgres")]
pub use pg::PgSagaStore;

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;

    use tokio_postgres::{Client, Statement};

    use super::{MAX_LIST, SagaRecord, SagaState, SagaStore};
    use crate::error::StoreError;
    use crate::pg::Schema;

    /// Saga records in the `sagas` table (see [`migrate`](crate::pg::migrate)): one round
    /// trip per write, so two per step on the happy path.
    #[derive(Clone)]
    pub struct PgSagaStore {
        client: Arc<Client>,
        create: Statement,
        save: Statement,
        load: Statement,
        list: Statement,
    }

    impl std::fmt::Debug for PgSagaStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PgSagaStore").finish_non_exhaustive()
        }
    }

    impl PgSagaStore {
        /// Prepares the statements on `client` for `schema`.
        pub async fn new(client: Arc<Client>, schema: &Schema) -> Result<Self, StoreError> {
            let s = schema.as_str();
            let create = client
                .prepare(&format!(
                    "INSERT INTO {s}.sagas (id, name, state, record) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO NOTHING"
                ))
                .await?;
            let save = client
                .prepare(&format!(
                    "UPDATE {s}.sagas SET state = $2, record = $3 WHERE id = $1"
                ))
                .await?;
            let load = client
                .prepare(&format!("SELECT record FROM {s}.sagas WHERE id = $1"))
                .await?;
            let list = client
                .prepare(&format!(
                    "SELECT record FROM {s}.sagas WHERE name = $1 AND state = $2 ORDER BY id LIMIT $3"
                ))
                .await?;
            Ok(Self {
                client,
                create,
                save,
                load,
                list,
            })
        }
    }

    impl SagaStore for PgSagaStore {
        async fn create(&self, record: &SagaRecord) -> Result<bool, StoreError> {
            let json = serde_json::to_value(record)?;
            let n = self
                .client
                .execute(
                    &self.create,
                    &[&record.id, &record.saga, &record.state.as_str(), &json],
                )
                .await?;
            Ok(n == 1)
        }
        async fn save(&self, record: &SagaRecord) -> Result<(), StoreError> {
            let json = serde_json::to_value(record)?;
            self.client
                .execute(&self.save, &[&record.id, &record.state.as_str(), &json])
                .await?;
            Ok(())
        }
        async fn load(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
            let row = self.client.query_opt(&self.load, &[&id]).await?;
            match row {
                Some(r) => Ok(Some(serde_json::from_value(r.get(0))?)),
                None => Ok(None),
            }
        }
        async fn list(
            &self,
            saga: &str,
            state: SagaState,
            max: usize,
        ) -> Result<Vec<SagaRecord>, StoreError> {
            let limit = max.min(MAX_LIST) as i64;
            let rows = self
                .client
                .query(&self.list, &[&saga, &state.as_str(), &limit])
                .await?;
            rows.iter()
                .map(|r| Ok(serde_json::from_value(r.get(0))?))
                .collect()
        }
    }
}
