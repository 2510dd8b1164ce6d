//! The two-phase commit coordinator.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use palisade_core::config::{check_duration, check_instance_name, check_range};
use palisade_core::{BoxError, ConfigError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use super::log::{DecisionLog, MAX_UNFINISHED, TxRecord, TxState};
use crate::error::StoreError;

/// Most participants in one coordinator.
pub const MAX_PARTICIPANTS: usize = 64;
/// Longest transaction id, in bytes.
pub const MAX_TX_ID: usize = 128;

/// The phase a participant is asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Make the change durable but invisible, hold what it needs, and vote.
    Prepare,
    /// Make the prepared change visible and release.
    Commit,
    /// Drop the prepared change (or do nothing if none) and release.
    Abort,
}

/// What a participant is called with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TwoPcRequest<P> {
    /// The transaction's id: the participant's key for its prepared state.
    pub tx: String,
    /// The phase.
    pub phase: Phase,
    /// The transaction's payload.
    pub payload: P,
}

/// A participant's answer. To `Commit` and `Abort` any `Ok` is an acknowledgement; an
/// error means "ask again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// Prepared: will commit if told to, whatever happens meanwhile.
    Yes,
    /// Cannot prepare: the transaction aborts.
    No,
}

type Participant<P> = BoxCloneSyncService<TwoPcRequest<P>, Vote, BoxError>;

/// Why the coordinator could not run or recover a transaction. A participant's refusal is
/// not an error: it is an aborted [`TxRecord`].
#[derive(Debug)]
#[non_exhaustive]
pub enum TwoPcError {
    /// The decision log failed.
    Store(StoreError),
    /// The id is empty, longer than 128 bytes, or not visible ASCII.
    InvalidId,
    /// A transaction with this id was already logged.
    AlreadyExists,
    /// The logged record names participants this coordinator lacks.
    Mismatch,
}

impl fmt::Display for TwoPcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "decision log failed: {e}"),
            Self::InvalidId => {
                f.write_str("transaction id must be 1 to 128 visible ASCII characters")
            }
            Self::AlreadyExists => f.write_str("a transaction with this id already exists"),
            Self::Mismatch => f.write_str("the logged transaction does not match this coordinator"),
        }
    }
}

impl std::error::Error for TwoPcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for TwoPcError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<serde_json::Error> for TwoPcError {
    fn from(e: serde_json::Error) -> Self {
        Self::Store(StoreError::Codec(e))
    }
}

struct Settings<P> {
    participants: Vec<(String, Participant<P>)>,
    prepare_timeout: Duration,
    ack_attempts: u32,
    ack_backoff: Duration,
}

/// Runs two-phase commits over participant services, logging to a [`DecisionLog`]. See the
/// [module docs](super) for the protocol and its blocking failure mode. Clones share the
/// participants and the log.
pub struct Coordinator<P, L> {
    settings: Arc<Settings<P>>,
    log: L,
}

impl<P, L: Clone> Clone for Coordinator<P, L> {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            log: self.log.clone(),
        }
    }
}

impl<P, L: fmt::Debug> fmt::Debug for Coordinator<P, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .settings
            .participants
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        f.debug_struct("Coordinator")
            .field("participants", &names)
            .field("prepare_timeout", &self.settings.prepare_timeout)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Coordinator`]; [`build`](Self::build) checks every value.
pub struct CoordinatorBuilder<P> {
    settings: Settings<P>,
}

impl<P> fmt::Debug for CoordinatorBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorBuilder").finish_non_exhaustive()
    }
}

impl<P> CoordinatorBuilder<P>
where
    P: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Adds a participant named `name` (unique, 1 to 128 visible ASCII characters).
    #[must_use]
    pub fn participant<S>(mut self, name: impl Into<String>, service: S) -> Self
    where
        S: Service<TwoPcRequest<P>, Response = Vote, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.settings
            .participants
            .push((name.into(), BoxCloneSyncService::new(service)));
        self
    }

    /// How long the prepare phase may take (1 ms to 1 h; default 5 s): a participant that
    /// has not voted by then counts as a No.
    #[must_use]
    pub fn prepare_timeout(mut self, timeout: Duration) -> Self {
        self.settings.prepare_timeout = timeout;
        self
    }

    /// Attempts to deliver the decision to each participant before leaving it to
    /// [`recover`](Coordinator::recover) (1 to 1000; default 5).
    #[must_use]
    pub fn ack_attempts(mut self, attempts: u32) -> Self {
        self.settings.ack_attempts = attempts;
        self
    }

    /// The wait between delivery attempts (0 to 1 h; default 100 ms).
    #[must_use]
    pub fn ack_backoff(mut self, backoff: Duration) -> Self {
        self.settings.ack_backoff = backoff;
        self
    }

    /// Checks the settings, naming the field: `participants` (1 to 64),
    /// `participants[i].name`, `prepare_timeout`, `ack_attempts`, `ack_backoff`.
    pub fn build<L: DecisionLog>(self, log: L) -> Result<Coordinator<P, L>, ConfigError> {
        let s = self.settings;
        if s.participants.is_empty() || s.participants.len() > MAX_PARTICIPANTS {
            return Err(ConfigError::new(
                "participants",
                format!(
                    "must hold 1 to {MAX_PARTICIPANTS} participants (got {})",
                    s.participants.len()
                ),
            ));
        }
        for (i, (name, _)) in s.participants.iter().enumerate() {
            let within = format!("participants[{i}]");
            check_instance_name("name", name).map_err(|e| e.within(&within))?;
            if s.participants[..i].iter().any(|(n, _)| n == name) {
                return Err(ConfigError::new("name", "must be unique").within(&within));
            }
        }
        check_duration(
            "prepare_timeout",
            s.prepare_timeout,
            Duration::from_millis(1),
            Duration::from_secs(3600),
        )?;
        check_range("ack_attempts", s.ack_attempts, 1, 1000)?;
        check_duration(
            "ack_backoff",
            s.ack_backoff,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        Ok(Coordinator {
            settings: Arc::new(s),
            log,
        })
    }
}

impl<P, L> Coordinator<P, L>
where
    P: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    L: DecisionLog,
{
    /// A builder without participants.
    pub fn builder() -> CoordinatorBuilder<P> {
        CoordinatorBuilder {
            settings: Settings {
                participants: Vec::new(),
                prepare_timeout: Duration::from_secs(5),
                ack_attempts: 5,
                ack_backoff: Duration::from_millis(100),
            },
        }
    }

    /// The decision log.
    pub fn log(&self) -> &L {
        &self.log
    }

    /// Runs transaction `tx`: logs it, asks every participant to prepare (concurrently,
    /// within the prepare timeout), logs the decision, and delivers it. Returns the record:
    /// `Committed` or `Aborted`, or still `Committing`/`Aborting` when a participant did not
    /// acknowledge within its attempts ([`recover`](Self::recover) finishes it).
    pub async fn execute(&self, tx: &str, payload: P) -> Result<TxRecord, TwoPcError> {
        if tx.is_empty() || tx.len() > MAX_TX_ID || !tx.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TwoPcError::InvalidId);
        }
        let n = self.settings.participants.len();
        let mut record = TxRecord {
            tx: tx.to_owned(),
            state: TxState::Preparing,
            participants: self
                .settings
                .participants
                .iter()
                .map(|(n, _)| n.clone())
                .collect(),
            acked: vec![false; n],
            payload: serde_json::to_value(&payload)?,
            reason: None,
        };
        if !self.log.create(&record).await? {
            return Err(TwoPcError::AlreadyExists);
        }
        let votes = join_all(self.settings.participants.iter().map(|(name, svc)| {
            let req = TwoPcRequest {
                tx: tx.to_owned(),
                phase: Phase::Prepare,
                payload: payload.clone(),
            };
            let call = svc.clone().oneshot(req);
            async move {
                match tokio::time::timeout(self.settings.prepare_timeout, call).await {
                    Ok(Ok(Vote::Yes)) => None,
                    Ok(Ok(Vote::No)) => Some(format!("{name} voted no")),
                    Ok(Err(e)) => Some(format!("{name} failed to prepare: {e}")),
                    Err(_) => Some(format!("{name} did not vote within the prepare timeout")),
                }
            }
        }))
        .await;
        let refusal = votes.into_iter().flatten().next();
        record.state = if refusal.is_some() {
            TxState::Aborting
        } else {
            TxState::Committing
        };
        record.reason = refusal;
        // The commit point.
        self.log.save(&record).await?;
        self.deliver(record, payload).await
    }

    /// Finishes every transaction the log holds unfinished: one still `Preparing` (the
    /// coordinator stopped before deciding) is aborted, presumed-abort style; one
    /// `Committing` or `Aborting` has its decision delivered again to every participant
    /// that has not acknowledged it. Call it at start-up, and periodically to retry
    /// deliveries that ran out of attempts.
    pub async fn recover(&self) -> Result<Vec<TxRecord>, TwoPcError> {
        let mut out = Vec::new();
        for mut record in self.log.unfinished(MAX_UNFINISHED).await? {
            if record.participants.len() != self.settings.participants.len()
                || record
                    .participants
                    .iter()
                    .zip(&self.settings.participants)
                    .any(|(a, (b, _))| a != b)
                || record.acked.len() != record.participants.len()
            {
                return Err(TwoPcError::Mismatch);
            }
            if record.state == TxState::Preparing {
                record.state = TxState::Aborting;
                record.reason = Some("coordinator stopped before deciding".to_owned());
                self.log.save(&record).await?;
            }
            let payload: P = serde_json::from_value(record.payload.clone())?;
            out.push(self.deliver(record, payload).await?);
        }
        Ok(out)
    }

    async fn deliver(&self, mut record: TxRecord, payload: P) -> Result<TxRecord, TwoPcError> {
        let (phase, done) = match record.state {
            TxState::Committing => (Phase::Commit, TxState::Committed),
            TxState::Aborting => (Phase::Abort, TxState::Aborted),
            _ => return Ok(record),
        };
        let acks = join_all(
            self.settings
                .participants
                .iter()
                .enumerate()
                .map(|(i, (_, svc))| {
                    let already = record.acked[i];
                    let req = TwoPcRequest {
                        tx: record.tx.clone(),
                        phase,
                        payload: payload.clone(),
                    };
                    async move {
                        if already {
                            return true;
                        }
                        for attempt in 0..self.settings.ack_attempts {
                            if attempt > 0 {
                                tokio::time::sleep(self.settings.ack_backoff).await;
                            }
                            if svc.clone().oneshot(req.clone()).await.is_ok() {
                                return true;
                            }
                        }
                        false
                    }
                }),
        )
        .await;
        record.acked = acks;
        if record.acked.iter().all(|&a| a) {
            record.state = done;
        }
        self.log.save(&record).await?;
        Ok(record)
    }
}
