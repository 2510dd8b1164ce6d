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
