//! Events emitted by the bulkhead.

use palisade_core::event::{Event, InstanceName};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No free slot and the queue was full.
    Full,
    /// It waited in the queue for the longest allowed time.
    QueueTimeout,
    /// Keyed bulkhead: a new key, and `max_keys` keys all busy.
    TooManyKeys,
}

/// What a bulkhead did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// A request got a slot (at once or after queueing).
    Admitted {
        /// The bulkhead's name.
        instance: InstanceName,
        /// Its priority lane.
        lane: usize,
        /// Calls inside after admitting it.
        in_flight: usize,
    },
    /// A request was queued; `depth` is the queue length after it.
    Queued {
        /// The bulkhead's name.
        instance: InstanceName,
        /// Its priority lane.
        lane: usize,
        /// Queue length after queueing it.
        depth: usize,
    },
    /// A request was refused with `BulkheadFull`.
    Rejected {
        /// The bulkhead's name.
        instance: InstanceName,
        /// Its priority lane.
        lane: usize,
        /// Why.
        reason: RejectReason,
    },
    /// The concurrency limit changed (through the handle or the adaptive limit).
    LimitChanged {
        /// The bulkhead's name.
        instance: InstanceName,
        /// Old limit.
        from: usize,
        /// New limit.
        to: usize,
    },
}

impl Event for BulkheadEvent {
    fn layer(&self) -> &'static str {
        "bulkhead"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Admitted { .. } => "admitted",
            Self::Queued { .. } => "queued",
            Self::Rejected { .. } => "rejected",
            Self::LimitChanged { .. } => "limit_changed",
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Admitted { instance, .. }
            | Self::Queued { instance, .. }
            | Self::Rejected { instance, .. }
            | Self::LimitChanged { instance, .. } => instance,
        }
    }
    /// `full`, `queue_timeout` or `too_many_keys` on `rejected`.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Rejected { reason, .. } => Some(reason.as_str()),
            _ => None,
        }
    }
    /// Calls inside after an admission, queue length after an enqueue, the new limit.
    fn count(&self) -> Option<u64> {
        match self {
            Self::Admitted { in_flight: n, .. }
            | Self::Queued { depth: n, .. }
            | Self::LimitChanged { to: n, .. } => Some(*n as u64),
            Self::Rejected { .. } => None,
        }
    }
}

impl RejectReason {
    /// Stable snake_case name: `full`, `queue_timeout`, `too_many_keys`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::QueueTimeout => "queue_timeout",
            Self::TooManyKeys => "too_many_keys",
        }
    }
}
