//! The errors and rejections a [`FaultLayer`](crate::FaultLayer) injects.

use std::error::Error;
use std::fmt;

use http::StatusCode;
use palisade_core::{GrpcCode, Rejection};

/// The error returned by an injected error fault. It is not a rejection, so
/// [`HandleRejections`](palisade_core::HandleRejections) answers it like any unexpected
/// error of the service: 500 / UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FaultInjected;

impl FaultInjected {
    /// The error.
    pub const fn new() -> Self {
        Self
    }
}

impl fmt::Display for FaultInjected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("injected fault")
    }
}
impl Error for FaultInjected {}

/// An injected abort, rendered through core's rejection rendering: problem+json with the
/// configured status, or a gRPC trailers-only response with the configured code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultAborted {
    /// The HTTP status answered.
    pub status: StatusCode,
    /// The gRPC code answered to gRPC requests.
    pub grpc_code: GrpcCode,
}

impl FaultAborted {
    /// An abort with this status and gRPC code.
    pub const fn new(status: StatusCode, grpc_code: GrpcCode) -> Self {
        Self { status, grpc_code }
    }
}

impl fmt::Display for FaultAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request aborted by fault injection")
    }
}
impl Error for FaultAborted {}

impl Rejection for FaultAborted {
    fn kind(&self) -> &'static str {
        "fault_abort"
    }
    fn status(&self) -> StatusCode {
        self.status
    }
    fn grpc_code(&self) -> GrpcCode {
        self.grpc_code
    }
}
