//! The request every producer takes and the receipt it answers with.

use bytes::Bytes;
use std::fmt;

/// Longest message id accepted: AMQP's `message-id` is a short string (255 bytes), and the
/// same bound keeps JetStream's `Nats-Msg-Id` and the outbox column small.
pub const MAX_MESSAGE_ID_LEN: usize = 255;

/// Longest subject (NATS subject or AMQP routing key) accepted; AMQP caps routing keys at
/// 255 bytes.
pub const MAX_SUBJECT_LEN: usize = 255;

/// Most headers one message may carry.
pub const MAX_HEADERS: usize = 64;

/// One message to publish: a destination, a payload, an optional id for broker-side dedupe
/// and a few string headers.
///
/// - `subject` is the NATS subject for [`JetStreamPublisher`](crate::producer::JetStreamPublisher)
///   and the routing key for [`AmqpPublisher`](crate::producer::AmqpPublisher).
/// - `message_id` becomes `Nats-Msg-Id` (JetStream drops a second message with the same id
///   inside the stream's duplicate window) or the AMQP `message-id` property (for the
///   consumer's inbox). Publishing the same request twice with an id is therefore safe to
///   retry.
///
/// Invalid values are not rejected here but by the producer, as a
/// [`PublishError`](crate::error::PublishError) of kind
/// [`InvalidRequest`](crate::error::PublishErrorKind::InvalidRequest); see
/// [`PublishRequest::validate`].
#[derive(Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// NATS subject or AMQP routing key.
    pub subject: String,
    /// The body, shared without copying.
    pub payload: Bytes,
    /// The id for broker-side dedupe, if any.
    pub message_id: Option<String>,
    /// Extra headers, in order (name, value).
    pub headers: Vec<(String, String)>,
}

impl PublishRequest {
    /// A message to `subject` with `payload`, no id and no headers.
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            subject: subject.into(),
            payload: payload.into(),
            message_id: None,
            headers: Vec::new(),
        }
    }

    /// Sets the message id used for dedupe.
    #[must_use]
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks the request against what both brokers accept: a subject of 1 to
    /// [`MAX_SUBJECT_LEN`] bytes without whitespace or control characters, a message id of
    /// 1 to [`MAX_MESSAGE_ID_LEN`] bytes without control characters, at most
    /// [`MAX_HEADERS`] headers whose names are visible ASCII without `:` and whose values
    /// have no CR or LF.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.subject.is_empty() || self.subject.len() > MAX_SUBJECT_LEN {
            return Err("subject must be 1 to 255 bytes");
        }
        if self
            .subject
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("subject must not contain whitespace or control characters");
        }
        if let Some(id) = &self.message_id {
            if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN {
                return Err("message id must be 1 to 255 bytes");
            }
            if id.chars().any(char::is_control) {
                return Err("message id must not contain control characters");
            }
        }
        if self.headers.len() > MAX_HEADERS {
            return Err("too many headers (at most 64)");
        }
        for (name, value) in &self.headers {
            if name.is_empty()
                || name.len() > MAX_SUBJECT_LEN
                || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            {
                return Err("header names must be 1 to 255 visible ASCII bytes without ':'");
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err("header values must not contain CR or LF");
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PublishRequest {
    // The payload may be large or sensitive: its length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishRequest")
            .field("subject", &self.subject)
            .field("payload_len", &self.payload.len())
            .field("message_id", &self.message_id)
            .field("headers", &self.headers)
            .finish()
    }
}

/// What the broker confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PublishReceipt {
    /// The stream sequence (JetStream); `None` for RabbitMQ, whose confirms carry no
    /// position.
    pub sequence: Option<u64>,
    /// JetStream recognised the message id inside its duplicate window and did not store
    /// the message again.
    pub duplicate: bool,
}

impl PublishReceipt {
    /// A receipt with the given sequence and duplicate flag.
    pub const fn new(sequence: Option<u64>, duplicate: bool) -> Self {
        Self {
            sequence,
            duplicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_each_bad_field() {
        let ok = PublishRequest::new("orders.created", "x")
            .with_message_id("id-1")
            .with_header("Content-Type", "application/json");
        assert_eq!(ok.validate(), Ok(()));
        assert!(PublishRequest::new("", "x").validate().is_err());
        assert!(PublishRequest::new("a b", "x").validate().is_err());
        assert!(
            PublishRequest::new("a".repeat(256), "x")
                .validate()
                .is_err()
        );
        assert!(PublishRequest::new("a".repeat(255), "x").validate().is_ok());
        assert!(ok.clone().with_message_id("").validate().is_err());
        assert!(
            ok.clone()
                .with_message_id("x".repeat(256))
                .validate()
                .is_err()
        );
        assert!(ok.clone().with_message_id("a\nb").validate().is_err());
        assert!(ok.clone().with_header("a:b", "v").validate().is_err());
        assert!(ok.clone().with_header("é", "v").validate().is_err());
        assert!(ok.clone().with_header("", "v").validate().is_err());
        assert!(ok.clone().with_header("n", "a\r\nb").validate().is_err());
        let mut many = PublishRequest::new("s", "x");
        many.headers = vec![("h".into(), "v".into()); 65];
        assert!(many.validate().is_err());
        many.headers.pop();
        assert!(many.validate().is_ok());
    }

    #[test]
    fn debug_hides_the_payload() {
        let r = PublishRequest::new("s", "secret-body");
        let text = format!("{r:?}");
        assert!(!text.contains("secret-body"));
        assert!(text.contains("payload_len: 11"));
    }
}
