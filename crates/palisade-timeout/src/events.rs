//! Events emitted by the timeout layer.

use std::time::Duration;

use palisade_core::event::{Event, InstanceName};

/// Where the effective deadline of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineSource {
    /// The layer's configured timeout.
    Configured,
    /// The incoming `grpc-timeout` header, shorter than the configured timeout.
    GrpcTimeout,
    /// The configured milliseconds header, shorter than the configured timeout.
    Header,
    /// A [`Deadline`](palisade_core::Deadline) already in the request's extensions (an outer
    /// timeout layer), shorter than the others.
    Outer,
}

impl DeadlineSource {
    /// Stable snake_case name: `configured`, `grpc_timeout`, `header`, `outer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::GrpcTimeout => "grpc_timeout",
            Self::Header => "header",
            Self::Outer => "outer",
        }
    }
}

/// What the timeout layer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutEvent {
    /// The request ran out of time; the inner future was dropped.
    Elapsed {
        /// The timeout layer's name.
        instance: InstanceName,
        /// The effective timeout that fired.
        timeout: Duration,
        /// Where it came from.
        source: DeadlineSource,
    },
    /// An incoming deadline header was malformed and ignored.
    InvalidDeadlineHeader {
        /// The timeout layer's name.
        instance: InstanceName,
        /// The header's name.
        header: http::HeaderName,
    },
}

impl Event for TimeoutEvent {
    /// The timeout that fired.
    fn duration(&self) -> Option<Duration> {
        match self {
            Self::Elapsed { timeout, .. } => Some(*timeout),
            Self::InvalidDeadlineHeader { .. } => None,
        }
    }
    /// Where the timeout that fired came from: `configured`, `grpc_timeout`, `header`,
    /// `outer`.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Elapsed { source, .. } => Some(source.as_str()),
            Self::InvalidDeadlineHeader { .. } => None,
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Elapsed { instance, .. } | Self::InvalidDeadlineHeader { instance, .. } => {
                instance
            }
        }
    }
    fn layer(&self) -> &'static str {
        "timeout"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Elapsed { .. } => "elapsed",
            Self::InvalidDeadlineHeader { .. } => "invalid_deadline_header",
        }
    }
}
