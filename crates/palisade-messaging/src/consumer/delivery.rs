//! One message handed to a handler, and the error that skips retries.

use bytes::Bytes;
use std::fmt;

/// The header naming a message's type for [`Dispatch`](super::Dispatch) (CloudEvents'
/// binary-mode attribute); without it the subject is the type.
pub const TYPE_HEADER: &str = "ce-type";

/// A received message, as the handler sees it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The NATS subject (or AMQP routing key) it was published to.
    pub subject: String,
    /// The body.
    pub payload: Bytes,
    /// The publisher's message id (`Nats-Msg-Id`, AMQP `message-id`), if any: the key for
    /// an inbox that makes effects happen once.
    pub message_id: Option<String>,
    /// The headers, first value of each.
    pub headers: Vec<(String, String)>,
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// The stream sequence (JetStream), for tracing and dead-letter ids.
    pub sequence: Option<u64>,
}

impl Delivery {
    /// A delivery (for tests of handlers).
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            subject: subject.into(),
            payload: payload.into(),
            message_id: None,
            headers: Vec::new(),
            attempt: 1,
            sequence: None,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The message type: the [`TYPE_HEADER`] header, else the subject.
    pub fn message_type(&self) -> &str {
        self.header(TYPE_HEADER).unwrap_or(&self.subject)
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.subject)
            .field("payload_len", &self.payload.len())
            .field("message_id", &self.message_id)
            .field("attempt", &self.attempt)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

/// A handler error that retrying cannot fix (an undecodable payload, an unknown type): the
/// processor dead-letters the message at once instead of redelivering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permanent(pub String);

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}
