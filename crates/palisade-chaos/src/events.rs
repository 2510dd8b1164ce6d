//! Events emitted by the fault layer, one per fault injected.

use std::time::Duration;

use palisade_core::Event;

use crate::AbortWith;

/// Where an injected fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSource {
    /// The layer's configured faults.
    Configured,
    /// An Envoy fault header on the request.
    Header,
}

/// Why a fault that would have fired was not injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// As many faulted requests as allowed were already in flight.
    MaxActive,
}

/// What the fault layer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultEvent {
    /// A delay was added before the request went on.
    Delayed {
        /// How long.
        delay: Duration,
        /// From the configuration or a header.
        source: FaultSource,
    },
    /// The request was answered without calling the inner service.
    Aborted {
        /// The answer.
        with: AbortWith,
        /// From the configuration or a header.
        source: FaultSource,
    },
    /// The request failed with [`FaultInjected`](crate::error::FaultInjected).
    Failed,
    /// The response body was limited to a bandwidth.
    Throttled {
        /// The limit.
        bytes_per_second: u64,
        /// From the configuration or a header.
        source: FaultSource,
    },
    /// A fault would have fired but was not injected.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// A fault header was present but malformed, and ignored.
    InvalidHeader {
        /// The header's name.
        header: &'static str,
    },
}

impl Event for FaultEvent {
    fn layer(&self) -> &'static str {
        "chaos"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Delayed { .. } => "delayed",
            Self::Aborted { .. } => "aborted",
            Self::Failed => "failed",
            Self::Throttled { .. } => "throttled",
            Self::Skipped { .. } => "skipped",
            Self::InvalidHeader { .. } => "invalid_header",
        }
    }
}
