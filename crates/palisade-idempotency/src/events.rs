//! Events of the idempotency layer and inbox.

use http::StatusCode;
use palisade_core::event::{Event, InstanceName};

/// A decision of [`Idempotency`](crate::Idempotency) or [`Inbox`](crate::Inbox).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdempotencyEvent {
    /// The handler ran for a new key. `stored` is false when the response was not recorded
    /// (5xx with `store_server_errors(false)`, body over the limit, or a lost lease).
    Executed {
        /// The layer's (or inbox's) name.
        instance: InstanceName,
        /// The handler's status (200 for inbox messages).
        status: StatusCode,
        /// Whether the response is now stored for replay.
        stored: bool,
    },
    /// A stored response was replayed (or, in the inbox, a duplicate acknowledged).
    Replayed {
        /// The layer's (or inbox's) name.
        instance: InstanceName,
        /// The replayed status.
        status: StatusCode,
    },
    /// The key is held by a request still in flight: 409.
    Conflict {
        /// The layer's (or inbox's) name.
        instance: InstanceName,
    },
    /// The key was used with a different payload: 422.
    Mismatch {
        /// The layer's (or inbox's) name.
        instance: InstanceName,
    },
    /// A lease ran out: either this request took over an expired lock (`late_finisher:
    /// false`), or it finished after losing its lock and its result was discarded (`true`).
    LockExpired {
        /// The layer's (or inbox's) name.
        instance: InstanceName,
        /// Whether this request is the late finisher.
        late_finisher: bool,
    },
    /// Storing the handler's response failed after it ran. The response was sent to the
    /// caller; the layer keeps the lock (renewing its lease) and retries the write with
    /// backoff in the background, so retries get 409 meanwhile, never a second execution.
    StoreFailed {
        /// The layer's (or inbox's) name.
        instance: InstanceName,
    },
    /// The response could not be stored after [`STORE_ATTEMPTS`](crate::STORE_ATTEMPTS)
    /// attempts: the key is marked "outcome unknown" (`recorded: true`), and retries are
    /// answered with [`OutcomeUnknown`](crate::error::OutcomeUnknown) (500) instead of running
    /// the handler again. `recorded: false`: not even the marker could be written before the
    /// record's TTL; the lock then expires with its lease.
    OutcomeUnknown {
        /// The layer's (or inbox's) name.
        instance: InstanceName,
        /// Whether the marker was written.
        recorded: bool,
    },
}

impl Event for IdempotencyEvent {
    fn instance(&self) -> &str {
        match self {
            Self::Executed { instance, .. }
            | Self::Replayed { instance, .. }
            | Self::Conflict { instance, .. }
            | Self::Mismatch { instance, .. }
            | Self::LockExpired { instance, .. }
            | Self::StoreFailed { instance, .. }
            | Self::OutcomeUnknown { instance, .. } => instance,
        }
    }
    fn layer(&self) -> &'static str {
        "idempotency"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Executed { .. } => "executed",
            Self::Replayed { .. } => "replayed",
            Self::Conflict { .. } => "conflict",
            Self::Mismatch { .. } => "mismatch",
            Self::LockExpired { .. } => "lock_expired",
            Self::StoreFailed { .. } => "store_failed",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
        }
    }
}
