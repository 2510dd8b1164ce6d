//! Rejections of the idempotency layer.
//!
//! All but [`RequestBodyTooLarge`] are defined in `palisade_core` and re-exported here; the
//! layer returns them boxed in a [`BoxError`](palisade_core::BoxError), and
//! [`HandleRejections`](palisade_core::HandleRejections) renders them as problem+json.
//! [`RequestBodyTooLarge`] is carried in an [`AnyRejection`](palisade_core::AnyRejection).

use std::fmt;

use http::StatusCode;
use palisade_core::{GrpcCode, Rejection};

pub use palisade_core::{
    IdempotencyConflict, IdempotencyKeyInvalid, IdempotencyKeyMissing, IdempotencyMismatch,
    StoreUnavailable,
};

/// The request body is larger than the layer buffers for fingerprinting (413).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestBodyTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

impl RequestBodyTooLarge {
    /// The rejection for `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl fmt::Display for RequestBodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request body is larger than {} bytes", self.limit)
    }
}

impl std::error::Error for RequestBodyTooLarge {}

impl Rejection for RequestBodyTooLarge {
    fn kind(&self) -> &'static str {
        "payload_too_large"
    }
    fn status(&self) -> StatusCode {
        StatusCode::PAYLOAD_TOO_LARGE
    }
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::ResourceExhausted
    }
}

/// The problem type of [`OutcomeUnknown`].
pub const OUTCOME_UNKNOWN_TYPE: &str = "urn:palisade:problem:idempotency-outcome-unknown";

/// The handler ran for this key but its response could not be stored, so the layer does not
/// know what to replay (500, problem type [`OUTCOME_UNKNOWN_TYPE`]). The handler is never run
/// again for the key while the marker lives (the key's TTL); reconcile out of band (look the
/// effect up) or use a new key once you know the first attempt had no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OutcomeUnknown;

impl OutcomeUnknown {
    /// The rejection.
    pub const fn new() -> Self {
        Self
    }
}

impl fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the request for this Idempotency-Key was executed but its outcome could not be recorded",
        )
    }
}

impl std::error::Error for OutcomeUnknown {}

impl Rejection for OutcomeUnknown {
    fn kind(&self) -> &'static str {
        "idempotency_outcome_unknown"
    }
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::Internal
    }
    fn problem_type(&self) -> &'static str {
        OUTCOME_UNKNOWN_TYPE
    }
    fn title(&self) -> &'static str {
        "Outcome of the idempotent request is unknown"
    }
}

/// The handler's task ended without an answer (it panicked): the key was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HandlerAborted;

impl HandlerAborted {
    /// The error.
    pub const fn new() -> Self {
        Self
    }
}

impl fmt::Display for HandlerAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the idempotent handler's task ended without a response (panic)")
    }
}

impl std::error::Error for HandlerAborted {}
