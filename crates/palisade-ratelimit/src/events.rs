//! Events emitted by the rate limiter.

use std::time::Duration;

use palisade_core::event::{Event, InstanceName};

/// What the rate limiter did. Keys appear only as a 64-bit hash (random seed per limiter),
/// so events can be logged without exposing API keys or client addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitEvent {
    /// A request was admitted (after `waited`, in wait mode).
    Allowed {
        /// The limiter's name.
        instance: InstanceName,
        /// Hash of the key.
        key_hash: u64,
        /// How long the request was held back first (zero in reject mode).
        waited: Duration,
    },
    /// A request was refused.
    Limited {
        /// The limiter's name.
        instance: InstanceName,
        /// Hash of the key.
        key_hash: u64,
        /// The `Retry-After` given.
        retry_after: Duration,
        /// Names of the refusing policies.
        violated_policies: Vec<String>,
    },
    /// Shadow (dry-run) mode: the request would have been refused, but passed. Emitted
    /// instead of `Allowed` when the layer is in [shadow mode](crate::RateLimitLayer::shadow)
    /// and its quotas refuse, or when a [shadow quota](crate::Quota::shadow) would refuse
    /// while the enforced ones admit.
    WouldLimit {
        /// The limiter's name.
        instance: InstanceName,
        /// Hash of the key.
        key_hash: u64,
        /// The `Retry-After` a refusal would have given.
        retry_after: Duration,
        /// Names of the policies that would have refused.
        policies: Vec<String>,
    },
    /// The shared store (Redis) failed or timed out; `action` says what was done instead.
    StoreFailed {
        /// The limiter's name.
        instance: InstanceName,
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

impl FailAction {
    /// Stable snake_case name: `open`, `closed`, `local`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Local => "local",
        }
    }
}

impl Event for RateLimitEvent {
    fn layer(&self) -> &'static str {
        "ratelimit"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Allowed { .. } => "allowed",
            Self::Limited { .. } => "limited",
            Self::WouldLimit { .. } => "would_limit",
            Self::StoreFailed { .. } => "store_failed",
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Allowed { instance, .. }
            | Self::Limited { instance, .. }
            | Self::WouldLimit { instance, .. }
            | Self::StoreFailed { instance, .. } => instance,
        }
    }
    /// The wait of an admission, the `Retry-After` of a refusal (or of a refusal that
    /// shadow mode let pass).
    fn duration(&self) -> Option<Duration> {
        match self {
            Self::Allowed { waited: d, .. }
            | Self::Limited { retry_after: d, .. }
            | Self::WouldLimit { retry_after: d, .. } => Some(*d),
            Self::StoreFailed { .. } => None,
        }
    }
    /// What a store failure did: `open`, `closed` or `local`.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::StoreFailed { action, .. } => Some(action.as_str()),
            _ => None,
        }
    }
}
