//! Events emitted by the retry layer.

use std::time::Duration;

use palisade_core::Event;

/// What the retry layer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEvent {
    /// Attempt `n` (2 = first retry) will be sent after `delay`.
    Attempt {
        /// The attempt number, counting the original as 1.
        n: u32,
        /// The wait before it.
        delay: Duration,
        /// Why: `"backoff"` or `"server_delay"` (Retry-After / pushback).
        reason: &'static str,
    },
    /// All `attempts` were used; the last result is returned.
    Exhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// The retry budget refused a retry; the last result is returned.
    BudgetExhausted,
    /// The request body was larger than the replay buffer: sent once, not retried.
    BodyTooLarge {
        /// The buffer limit in bytes.
        limit: usize,
    },
}

impl Event for RetryEvent {
    fn layer(&self) -> &'static str {
        "retry"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Attempt { .. } => "attempt",
            Self::Exhausted { .. } => "exhausted",
            Self::BudgetExhausted => "budget_exhausted",
            Self::BodyTooLarge { .. } => "body_too_large",
        }
    }
}
