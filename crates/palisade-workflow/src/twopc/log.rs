//! The coordinator's decision log.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// Most records one [`unfinished`](DecisionLog::unfinished) returns.
pub const MAX_UNFINISHED: usize = 10_000;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// Asking the participants to prepare; no decision yet.
    Preparing,
    /// Decided to commit (the commit point); delivering the decision.
    Committing,
    /// Decided to abort; delivering the decision.
    Aborting,
    /// Every participant acknowledged the commit.
    Committed,
    /// Every participant acknowledged the abort.
    Aborted,
}

impl TxState {
    /// The snake_case name stored (`"committing"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preparing => "preparing",
            Self::Committing => "committing",
            Self::Aborting => "aborting",
            Self::Committed => "committed",
            Self::Aborted => "aborted",
        }
    }

    /// Whether every participant acknowledged the decision.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Committed | Self::Aborted)
    }
}

/// A transaction as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxRecord {
    /// The transaction's id.
    pub tx: String,
    /// Where it is.
    pub state: TxState,
    /// The participants' names, in the coordinator's order.
    pub participants: Vec<String>,
    /// Which participants acknowledged the decision.
    pub acked: Vec<bool>,
    /// The payload sent with every phase.
    pub payload: Value,
    /// Why it aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a coordinator logs its transactions. The decision write is the commit point:
/// once a `Committing` record is stored, the transaction commits, whatever crashes after.
pub trait DecisionLog: Clone + Send + Sync + 'static {
    /// Stores a new record; `Ok(false)` (nothing written) if its id exists.
    fn create(&self, record: &TxRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Replaces the record of `record.tx`.
    fn save(&self, record: &TxRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The record of `tx`.
    fn load(&self, tx: &str) -> impl Future<Output = Result<Option<TxRecord>, StoreError>> + Send;
    /// Up to `max` records not yet final, by id.
    fn unfinished(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<TxRecord>, StoreError>> + Send;
}

/// A decision log in process memory (it does not survive the process: use it for tests,
/// or where the participants' own state is the durable part). Clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryDecisionLog {
    inner: Arc<Mutex<HashMap<String, TxRecord>>>,
}

impl MemoryDecisionLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TxRecord>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DecisionLog for MemoryDecisionLog {
    async fn create(&self, record: &TxRecord) -> Result<bool, StoreError> {
        let mut map = self.lock();
        if map.contains_key(&record.tx) {
            return Ok(false);
        }
        map.insert(record.tx.clone(), record.clone());
        Ok(true)
    }
    async fn save(&self, record: &TxRecord) -> Result<(), StoreError> {
        self.lock().insert(record.tx.clone(), record.clone());
        Ok(())
    }
    async fn load(&self, tx: &str) -> Result<Option<TxRecord>, StoreError> {
        Ok(self.lock().get(tx).cloned())
    }
    async fn unfinished(&self, max: usize) -> Result<Vec<TxRecord>, StoreError> {
        let map = self.lock();
        let mut out: Vec<TxRecord> = map
            .values()
            .filter(|r| !r.state.is_final())
            .cloned()
            .collect();
        out.sort_by(|a, b| a.tx.cmp(&b.tx));
        out.truncate(max.min(MAX_UNFINISHED));
        Ok(out)
    }
}

#[cfg(feature = "postgres")]
pub use pg::PgDecisionLog;

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;

    use tokio_postgres::{Client, Statement};

    use super::{DecisionLog, MAX_UNFINISHED, TxRecord};
    use crate::error::StoreError;
    use crate::pg::Schema;

    /// A decision log in the `twopc` table (see [`migrate`](crate::pg::migrate)): one round
    /// trip per write.
    #[derive(Clone)]
    pub struct PgDecisionLog {
        client: Arc<Client>,
        create: Statement,
        save: Statement,
        load: Statement,
        unfinished: Statement,
    }

    impl std::fmt::Debug for PgDecisionLog {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PgDecisionLog").finish_non_exhaustive()
        }
    }

    impl PgDecisionLog {
        /// Prepares the statements on `client` for `schema`.
        pub async fn new(client: Arc<Client>, schema: &Schema) -> Result<Self, StoreError> {
            let s = schema.as_str();
            let create = client
                .prepare(&format!(
                    "INSERT INTO {s}.twopc (tx, state, record) VALUES ($1, $2, $3) ON CONFLICT (tx) DO NOTHING"
                ))
                .await?;
            let save = client
                .prepare(&format!(
                    "UPDATE {s}.twopc SET state = $2, record = $3 WHERE tx = $1"
                ))
                .await?;
            let load = client
                .prepare(&format!("SELECT record FROM {s}.twopc WHERE tx = $1"))
                .await?;
            let unfinished = client
                .prepare(&format!(
                    "SELECT record FROM {s}.twopc WHERE state IN ('preparing', 'committing', 'aborting') \
                     ORDER BY tx LIMIT $1"
                ))
                .await?;
            Ok(Self {
                client,
                create,
                save,
                load,
                unfinished,
            })
        }
    }

    impl DecisionLog for PgDecisionLog {
        async fn create(&self, record: &TxRecord) -> Result<bool, StoreError> {
            let json = serde_json::to_value(record)?;
            let n = self
                .client
                .execute(&self.create, &[&record.tx, &record.state.as_str(), &json])
                .await?;
            Ok(n == 1)
        }
        async fn save(&self, record: &TxRecord) -> Result<(), StoreError> {
            let json = serde_json::to_value(record)?;
            self.client
                .execute(&self.save, &[&record.tx, &record.state.as_str(), &json])
                .await?;
            Ok(())
        }
        async fn load(&self, tx: &str) -> Result<Option<TxRecord>, StoreError> {
            match self.client.query_opt(&self.load, &[&tx]).await? {
                Some(r) => Ok(Some(serde_json::from_value(r.get(0))?)),
                None => Ok(None),
            }
        }
        async fn unfinished(&self, max: usize) -> Result<Vec<TxRecord>, StoreError> {
            let limit = max.min(MAX_UNFINISHED) as i64;
            let rows = self.client.query(&self.unfinished, &[&limit]).await?;
            rows.iter()
                .map(|r| Ok(serde_json::from_value(r.get(0))?))
                .collect()
        }
    }
}
