//! Saga orchestration: a long-running transaction as ordered steps, each undone by a
//! compensation when a later step fails.
//!
//! A [`Saga`] is a checked list of [`Step`]s, each an action [`Service`](tower_service::Service)
//! and a compensation `Service` over a shared, serde-serialisable context
//! ([`SagaContext`]). A [`SagaOrchestrator`] runs instances of it and logs each one in a
//! [`SagaStore`] (in memory, or PostgreSQL with feature `postgres`):
//!
//! - **before** each action or compensation it logs the step as in flight, and **after**
//!   it logs the outcome and the new context, so a process that stops anywhere resumes
//!   from the log ([`resume`](SagaOrchestrator::resume), [`recover`](SagaOrchestrator::recover));
//! - a step found in flight after a restart has an unknown outcome: it is called again
//!   with the same idempotency key (`"{saga_id}/{step}"`) or compensated, as the step's
//!   [`OnUnknown`] says;
//! - when an action fails (after whatever retry policy wraps its service) or times out,
//!   the done steps are compensated in reverse order (a timed-out step too: its effect is
//!   unknown); a compensation is retried with backoff up to a limit, then the saga is
//!   marked [`Stuck`](SagaState::Stuck) with a [`SagaEvent::Stuck`] event;
//! - each step has a timeout, and the saga one for all its actions, counted across
//!   restarts;
//! - instances are queried by id ([`get`](SagaOrchestrator::get): state, step, context,
//!   history) and listed by state.
//!
//! Participants must be idempotent on the key: a step may be called again after a restart,
//! and a compensation may be called for a step whose action never applied (it should then
//! do nothing). With that, each effect happens at most once and a saga ends with every step
//! done or every done step compensated.

mod definition;
mod error;
mod events;
mod orchestrator;
mod record;
mod store;

pub use definition::{
    MAX_COMPENSATION_ATTEMPTS, MAX_STEPS, OnUnknown, Saga, SagaBuilder, SagaContext, Step,
    StepRequest,
};
pub use error::SagaError;
pub use events::SagaEvent;
pub use orchestrator::{MAX_SAGA_ID, SagaOrchestrator};
pub use record::{HistoryEntry, HistoryKind, MAX_HISTORY, SagaRecord, SagaState};
#[cfg(feature = "postgres")]
pub use store::PgSagaStore;
pub use store::{MAX_LIST, MemorySagaStore, SagaStore};
