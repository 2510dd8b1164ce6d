//! Events emitted by the bulkhead.

use palisade_core::Event;

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
        /// Its priority lane.
        lane: usize,
        /// Calls inside after admitting it.
        in_flight: usize,
    },
    /// A request was queued; `depth` is the queue length after it.
    Queued {
        /// Its priority lane.
        lane: usize,
        /// Queue length after queueing it.
        depth: usize,
    },
    /// A request was refused with `BulkheadFull`.
    Rejected {
        /// Its priority lane.
        lane: usize,
        /// Why.
        reason: RejectReason,
    },
    /// The concurrency limit changed (through the handle or the adaptive limit).
    LimitChanged {
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
}
