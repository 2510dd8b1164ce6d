//! Two-phase commit: one decision over several participants, all commit or all abort.
//!
//! A [`Coordinator`] runs a transaction over participant
//! [`Service`](tower_service::Service)s that answer [`TwoPcRequest`]s:
//!
//! 1. it logs the transaction as `Preparing` in its [`DecisionLog`] (memory, or
//!    PostgreSQL with feature `postgres`);
//! 2. it asks every participant to [`Prepare`](Phase::Prepare), concurrently, within the
//!    prepare timeout; a [`Vote::No`], an error or no answer in time means abort;
//! 3. it logs the decision (`Committing` or `Aborting`): **this write is the commit
//!    point**;
//! 4. it delivers [`Commit`](Phase::Commit) or [`Abort`](Phase::Abort) to every
//!    participant, retrying each a few times, logs the acknowledgements, and marks the
//!    transaction `Committed` or `Aborted` when all are in.
//!
//! Messages per transaction of n participants: 2n calls and 3 log writes (one round trip
//! each on PostgreSQL).
//!
//! # The blocking failure mode, and recovery
//!
//! Two-phase commit blocks: a participant that voted Yes has promised to commit if told
//! to, so it must hold its prepared state (locks, reserved stock) until it hears the
//! decision, and it cannot decide alone, since another participant may have voted No, or
//! the decision may already be logged as commit. If the coordinator stops after the
//! participants prepared, they wait, holding what they reserved, until a coordinator comes
//! back. Recovery resolves it from the log alone ([`Coordinator::recover`], at start-up):
//!
//! - a transaction still `Preparing` has no decision, so nobody can have committed: it is
//!   aborted (presumed abort) and every participant is told so;
//! - a transaction `Committing` or `Aborting` has its decision delivered again to every
//!   participant that has not acknowledged it; a prepared participant is asked again, so
//!   participants must treat a repeated Commit or Abort as a no-op, and an Abort for a
//!   transaction they never prepared as one too.
//!
//! The log is the single source of truth: keep it durable (PostgreSQL) and run one
//! coordinator per log. Where blocking is unacceptable, use a [saga](crate::saga) instead:
//! it never holds participants, at the price of visible intermediate states and
//! compensations.

mod coordinator;
mod log;

pub use coordinator::{
    Coordinator, CoordinatorBuilder, MAX_PARTICIPANTS, MAX_TX_ID, Phase, TwoPcError, TwoPcRequest,
    Vote,
};
#[cfg(feature = "postgres")]
pub use log::PgDecisionLog;
pub use log::{DecisionLog, MAX_UNFINISHED, MemoryDecisionLog, TxRecord, TxState};
