//! Events emitted by the timeout layer.

use std::time::Duration;

use palisade_core::Event;

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

/// What the timeout layer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutEvent {
    /// The request ran out of time; the inner future was dropped.
    Elapsed {
        /// The effective timeout that fired.
        timeout: Duration,
        /// Where it came from.
        source: DeadlineSource,
    },
    /// An incoming deadline header was malformed and ignored.
    InvalidDeadlineHeader {
        /// The header's name.
        header: http::HeaderName,
    },
}

impl Event for TimeoutEvent {
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
