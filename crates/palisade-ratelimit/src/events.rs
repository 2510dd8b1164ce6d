//! Events emitted by the rate limiter.

use std::time::Duration;

use palisade_core::Event;

/// What the rate limiter did. Keys appear only as a 64-bit hash (random seed per limiter),
/// so events can be logged without exposing API keys or client addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitEvent {
    /// A request was admitted (after `waited`, in wait mode).
    Allowed {
        /// Hash of the key.
        key_hash: u64,
        /// How long the request was held back first (zero in reject mode).
        waited: Duration,
    },
    /// A request was refused.
    Limited {
        /// Hash of the key.
        key_hash: u64,
        /// The `Retry-After` given.
        retry_after: Duration,
        /// Names of the refusing policies.
        violated_policies: Vec<String>,
    },
    /// The shared store (Redis) failed or timed out; `action` says what was done instead.
    StoreFailed {
        /// What the limiter did with the request.
        action: FailAction,
        /// The error, for logs.
        error: String,
    },
}

/// What a limiter does with a request when its Redis store fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum FailAction {
    /// Admit it (availability first).
    #[default]
    Open,
    /// Refuse it with [`StoreUnavailable`](palisade_core::StoreUnavailable) (503).
    Closed,
    /// Decide it with the instance's local in-memory limiter.
    Local,
}

impl Event for RateLimitEvent {
    fn layer(&self) -> &'static str {
        "ratelimit"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Allowed { .. } => "allowed",
            Self::Limited { .. } => "limited",
            Self::StoreFailed { .. } => "store_failed",
        }
    }
}
