//! Events emitted by the retry layer ([`RetryEvent`]) and the adaptive throttle
//! ([`ThrottleEvent`]).

use std::time::Duration;

use http::StatusCode;
use palisade_core::GrpcCode;
use palisade_core::event::{Event, InstanceName};

/// Why an attempt was considered a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The inner service returned an error (transport error, per-attempt timeout, …).
    Error,
    /// A retryable HTTP status (502, 503, 504, 429).
    Status(StatusCode),
    /// A retryable gRPC status (UNAVAILABLE) in the response headers.
    Grpc(GrpcCode),
    /// A response (not an error) the predicate or classifier called a retryable failure;
    /// for responses that are not HTTP (see [`RetryLayer::classifier`](crate::RetryLayer::classifier)).
    Response,
}

/// Why the layer stopped retrying a request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The server asked for a delay (`Retry-After`, pushback) longer than the max backoff.
    ServerDelayTooLong,
    /// The backoff would end after the request's [`Deadline`](palisade_core::Deadline).
    Deadline,
    /// `grpc-retry-pushback-ms` was negative or malformed: the server said do not retry.
    Pushback,
}

/// What the retry layer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEvent {
    /// Attempt `n` (2 = first retry) starts after `delay` because of `reason`.
    Attempt {
        /// The retry layer's name.
        instance: InstanceName,
        /// The attempt number, counting the first (so retries start at 2).
        n: u32,
        /// The wait before it.
        delay: Duration,
        /// Why the previous attempt failed.
        reason: RetryReason,
    },
    /// Max attempts reached; the last result is returned.
    Exhausted {
        /// The retry layer's name.
        instance: InstanceName,
        /// Attempts made.
        attempts: u32,
    },
    /// The retry budget refused a retry; the last result is returned.
    BudgetExhausted {
        /// The retry layer's name.
        instance: InstanceName,
        /// Attempts made.
        attempts: u32,
    },
    /// The request body exceeded the replay buffer limit: sent once, not retried.
    BodyTooLarge {
        /// The retry layer's name.
        instance: InstanceName,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A hedged attempt was sent (`n` = attempts in flight or done, counting the first).
    Hedged {
        /// The retry layer's name.
        instance: InstanceName,
        /// The attempt number of the hedge (2 = first hedge).
        n: u32,
    },
    /// Retrying stopped early; the last result is returned.
    GaveUp {
        /// The retry layer's name.
        instance: InstanceName,
        /// Attempts made.
        attempts: u32,
        /// Why.
        reason: GiveUpReason,
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
            Self::BudgetExhausted { .. } => "budget_exhausted",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::GaveUp { .. } => "gave_up",
            Self::Hedged { .. } => "hedged",
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Attempt { instance, .. }
            | Self::Exhausted { instance, .. }
            | Self::BudgetExhausted { instance, .. }
            | Self::BodyTooLarge { instance, .. }
            | Self::Hedged { instance, .. }
            | Self::GaveUp { instance, .. } => instance,
        }
    }
    /// The wait before a retry.
    fn duration(&self) -> Option<Duration> {
        match self {
            Self::Attempt { delay, .. } => Some(*delay),
            _ => None,
        }
    }
    /// Why a retry: `error`, `status`, `grpc`, `response`; why giving up: `server_delay_too_long`,
    /// `deadline`, `pushback`.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Attempt { reason, .. } => Some(reason.as_str()),
            Self::GaveUp { reason, .. } => Some(reason.as_str()),
            _ => None,
        }
    }
    /// The attempt starting (retries and hedges), or the attempts made.
    fn attempt(&self) -> Option<u32> {
        match self {
            Self::Attempt { n, .. }
            | Self::Hedged { n, .. }
            | Self::Exhausted { attempts: n, .. }
            | Self::BudgetExhausted { attempts: n, .. }
            | Self::GaveUp { attempts: n, .. } => Some(*n),
            Self::BodyTooLarge { .. } => None,
        }
    }
    /// The replay buffer limit a body exceeded, in bytes.
    fn count(&self) -> Option<u64> {
        match self {
            Self::BodyTooLarge { limit, .. } => Some(*limit as u64),
            _ => None,
        }
    }
}

impl RetryReason {
    /// Stable snake_case name: `error`, `status`, `grpc`, `response`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Status(_) => "status",
            Self::Grpc(_) => "grpc",
            Self::Response => "response",
        }
    }
}

impl GiveUpReason {
    /// Stable snake_case name: `server_delay_too_long`, `deadline`, `pushback`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ServerDelayTooLong => "server_delay_too_long",
            Self::Deadline => "deadline",
            Self::Pushback => "pushback",
        }
    }
}

/// What the client-side adaptive throttle ([`AdaptiveThrottleLayer`](crate::AdaptiveThrottleLayer))
/// did. Layer name `"adaptive_throttle"`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ThrottleEvent {
    /// A request was shed locally, without being sent.
    Throttled {
        /// The throttle's name.
        instance: InstanceName,
        /// The rejection probability it was shed with, in `[0, 1]`.
        probability: f64,
        /// Requests in the window, this one included.
        requests: u64,
        /// Accepts in the window.
        accepts: u64,
    },
}

impl Event for ThrottleEvent {
    fn layer(&self) -> &'static str {
        "adaptive_throttle"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "throttled",
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Throttled { instance, .. } => instance,
        }
    }
    /// The rejection probability, in whole percent (rounded).
    fn percent(&self) -> Option<u32> {
        match self {
            Self::Throttled { probability, .. } => Some((probability * 100.0).round() as u32),
        }
    }
    /// Requests in the window.
    fn count(&self) -> Option<u64> {
        match self {
            Self::Throttled { requests, .. } => Some(*requests),
        }
    }
}
