//! Events emitted by the circuit breaker.

use std::time::Duration;

use palisade_core::Event;

use crate::State;

/// What a circuit breaker did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// The state changed.
    StateChanged {
        /// The breaker's name.
        name: &'static str,
        /// The state before.
        from: State,
        /// The state after.
        to: State,
    },
    /// A call was rejected without reaching the service.
    Rejected {
        /// The breaker's name.
        name: &'static str,
        /// The state that rejected it.
        state: State,
        /// The retry hint given to the caller.
        retry_after: Option<Duration>,
    },
}

impl Event for BreakerEvent {
    fn layer(&self) -> &'static str {
        "breaker"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::StateChanged { .. } => "state_changed",
            Self::Rejected { .. } => "rejected",
        }
    }
}
