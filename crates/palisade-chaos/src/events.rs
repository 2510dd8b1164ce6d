//! Events emitted by the fault layer, one per fault injected.

use std::time::Duration;

use palisade_core::event::{Event, InstanceName};

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
        /// The fault layer's name.
        instance: InstanceName,
        /// How long.
        delay: Duration,
        /// From the configuration or a header.
        source: FaultSource,
    },
    /// The request was answered without calling the inner service.
    Aborted {
        /// The fault layer's name.
        instance: InstanceName,
        /// The answer.
        with: AbortWith,
        /// From the configuration or a header.
        source: FaultSource,
    },
    /// The request failed with [`FaultInjected`](crate::error::FaultInjected).
    Failed {
        /// The fault layer's name.
        instance: InstanceName,
    },
    /// The response body was limited to a bandwidth.
    Throttled {
        /// The fault layer's name.
        instance: InstanceName,
        /// The limit.
        bytes_per_second: u64,
        /// From the configuration or a header.
        source: FaultSource,
    },
    /// A fault would have fired but was not injected.
    Skipped {
        /// The fault layer's name.
        instance: InstanceName,
        /// Why.
        reason: SkipReason,
    },
    /// A fault header was present but malformed, and ignored.
    InvalidHeader {
        /// The fault layer's name.
        instance: InstanceName,
        /// The header's name.
        header: &'static str,
    },
}

impl Event for FaultEvent {
    /// The delay injected.
    fn duration(&self) -> Option<Duration> {
        match self {
            Self::Delayed { delay, .. } => Some(*delay),
            _ => None,
        }
    }
    /// Why a fault was skipped: `max_active`.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Skipped {
                reason: SkipReason::MaxActive,
                ..
            } => Some("max_active"),
            _ => None,
        }
    }
    /// The bandwidth limit of a throttle, in bytes per second.
    fn count(&self) -> Option<u64> {
        match self {
            Self::Throttled {
                bytes_per_second, ..
            } => Some(*bytes_per_second),
            _ => None,
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Delayed { instance, .. }
            | Self::Aborted { instance, .. }
            | Self::Failed { instance, .. }
            | Self::Throttled { instance, .. }
            | Self::Skipped { instance, .. }
            | Self::InvalidHeader { instance, .. } => instance,
        }
    }
    fn layer(&self) -> &'static str {
        "chaos"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Delayed { .. } => "delayed",
            Self::Aborted { .. } => "aborted",
            Self::Failed { .. } => "failed",
            Self::Throttled { .. } => "throttled",
            Self::Skipped { .. } => "skipped",
            Self::InvalidHeader { .. } => "invalid_header",
        }
    }
}
