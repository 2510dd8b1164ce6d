//! Errors of the workflow stores: a typed optimistic-concurrency conflict (409 over HTTP)
//! and everything else a store can fail with.

use std::error::Error;
use std::fmt;

use palisade_core::grpc::GrpcCode;
use palisade_core::{AnyRejection, BoxError, Rejection};

/// An append expected a stream at one version and found it at another: someone else wrote
/// first. Reload and decide again.
///
/// It is a [`Rejection`] answered with **409 Conflict** (gRPC `ABORTED`); box it with
/// [`VersionConflict::into_box_error`] so that
/// [`HandleRejections`](palisade_core::HandleRejections) renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionConflict {
    /// The stream appended to.
    pub stream: String,
    /// The version the writer expected (`None`: "the stream does not exist").
    pub expected: Option<u64>,
    /// The version the stream had when the append was refused.
    pub actual: u64,
}

impl VersionConflict {
    /// A conflict on `stream`.
    pub fn new(stream: impl Into<String>, expected: Option<u64>, actual: u64) -> Self {
        Self {
            stream: stream.into(),
            expected,
            actual,
        }
    }

    /// Boxes it as an [`AnyRejection`], the form
    /// [`find_rejection`](palisade_core::rejection::find_rejection) recognises.
    pub fn into_box_error(self) -> BoxError {
        Box::new(AnyRejection::new(self))
    }
}

impl fmt::Display for VersionConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(v) => write!(
                f,
                "version conflict on stream: expected version {v}, found {}",
                self.actual
            ),
            None => write!(
                f,
                "version conflict on stream: expected no stream, found version {}",
                self.actual
            ),
        }
    }
}

impl Error for VersionConflict {}

impl Rejection for VersionConflict {
    fn kind(&self) -> &'static str {
        "version_conflict"
    }
    fn status(&self) -> http::StatusCode {
        http::StatusCode::CONFLICT
    }
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::Aborted
    }
}

/// What a store operation can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The expected version did not match (see [`VersionConflict`]).
    Conflict(VersionConflict),
    /// An argument was out of bounds (an empty or over-long stream name, too many events in
    /// one append, a version past `i64::MAX`).
    Invalid(&'static str),
    /// A stored value could not be (de)serialised.
    Codec(serde_json::Error),
    /// The backend failed (connection lost, SQL error).
    Backend(BoxError),
}

impl StoreError {
    /// Whether this is a [`VersionConflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// Boxes the error, a conflict as an [`AnyRejection`] (409) and the rest as themselves.
    pub fn into_box_error(self) -> BoxError {
        match self {
            Self::Conflict(c) => c.into_box_error(),
            other => Box::new(other),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict(c) => fmt::Display::fmt(c, f),
            Self::Invalid(why) => write!(f, "invalid store request: {why}"),
            Self::Codec(e) => write!(f, "stored value could not be (de)serialised: {e}"),
            Self::Backend(e) => write!(f, "store backend failed: {e}"),
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Conflict(c) => Some(c),
            Self::Invalid(_) => None,
            Self::Codec(e) => Some(e),
            Self::Backend(e) => Some(&**e),
        }
    }
}

impl From<VersionConflict> for StoreError {
    fn from(c: VersionConflict) -> Self {
        Self::Conflict(c)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Codec(e)
    }
}

#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Backend(Box::new(e))
    }
}
