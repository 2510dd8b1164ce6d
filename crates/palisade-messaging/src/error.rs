//! Errors of the producers, the outbox and the consumers.

use palisade_core::BoxError;
use std::fmt;

/// Why a publish failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishErrorKind {
    /// The request breaks a bound of [`PublishRequest::validate`](crate::PublishRequest::validate);
    /// nothing was sent. Retrying cannot help.
    InvalidRequest,
    /// The broker refused the message: a negative confirm, an unroutable message, no stream
    /// for the subject, a payload over the server's limit. Retrying the same message is
    /// unlikely to help.
    Rejected,
    /// The broker could not be reached or did not confirm in time (connection closed,
    /// broken pipe, ack timeout). The message may or may not have been stored: retry with
    /// the same message id.
    Unavailable,
}

/// A failed publish, with its kind and the client's error as the source.
#[derive(Debug)]
pub struct PublishError {
    kind: PublishErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl PublishError {
    /// A new error of `kind` with a short message.
    pub fn new(kind: PublishErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A new error of `kind` wrapping the client's error.
    pub fn with_source(
        kind: PublishErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> PublishErrorKind {
        self.kind
    }

    /// Whether retrying the same message (with the same id) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == PublishErrorKind::Unavailable
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("publish failed: ")?;
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
