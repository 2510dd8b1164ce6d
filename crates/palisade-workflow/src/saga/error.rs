//! Errors of the saga orchestrator (not of the steps: those are logged and compensated).

use std::error::Error;
use std::fmt;

use crate::error::StoreError;

/// Why the orchestrator could not start, resume or drive a saga.
#[derive(Debug)]
#[non_exhaustive]
pub enum SagaError {
    /// The saga log failed; the instance stays where it was logged and can be resumed.
    Store(StoreError),
    /// The id is empty, longer than 128 bytes, or not visible ASCII.
    InvalidId,
    /// An instance with this id already exists.
    AlreadyExists,
    /// No instance with this id.
    NotFound,
    /// The logged record belongs to another saga or has a step this definition lacks.
    Mismatch,
}

impl fmt::Display for SagaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "saga log failed: {e}"),
            Self::InvalidId => f.write_str("saga id must be 1 to 128 visible ASCII characters"),
            Self::AlreadyExists => f.write_str("a saga with this id already exists"),
            Self::NotFound => f.write_str("no saga with this id"),
            Self::Mismatch => f.write_str("the logged saga does not match this definition"),
        }
    }
}

impl Error for SagaError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for SagaError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<serde_json::Error> for SagaError {
    fn from(e: serde_json::Error) -> Self {
        Self::Store(StoreError::Codec(e))
    }
}
