//! One exchange being recorded: filled by the service, its future and both bodies, and
//! handed to the writer when the last of them lets go of it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use tokio::time::Instant;

use crate::record::exchange::{Exchange, Message, REDACTED};
use crate::record::writer::Sink;

/// Which headers are recorded, and which have their value replaced by [`REDACTED`].
#[derive(Debug, Clone)]
pub(crate) struct HeaderRules {
    pub(crate) redact: Vec<HeaderName>,
    pub(crate) only: Option<Vec<HeaderName>>,
}

impl HeaderRules {
    pub(crate) fn capture(&self, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            if let Some(only) = &self.only
                && !only.contains(name)
            {
                continue;
            }
            let value = if self.redact.contains(name) {
                HeaderValue::from_static(REDACTED)
            } else {
                value.clone()
            };
            out.push((name.clone(), value));
        }
        out
    }
}

/// The first bytes of a body, up to a bound, and its full length.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) bytes: BytesMut,
    pub(crate) len: u64,
    pub(crate) truncated: bool,
}

impl Captured {
    pub(crate) fn push(&mut self, chunk: &Bytes, limit: usize) {
        self.len += chunk.len() as u64;
        let room = limit.saturating_sub(self.bytes.len());
        let take = room.min(chunk.len());
        if take < chunk.len() {
            self.truncated = true;
        }
        if take > 0 {
            self.bytes.extend_from_slice(&chunk[..take]);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Draft {
    pub(crate) seq: u64,
    pub(crate) at: Duration,
    pub(crate) started: Instant,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) request_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) request_body: Captured,
    pub(crate) status: Option<StatusCode>,
    pub(crate) response_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) response_body: Captured,
    pub(crate) ended: Option<Instant>,
    pub(crate) error: Option<String>,
}

fn message(headers: Vec<(HeaderName, HeaderValue)>, body: &Captured) -> Message {
    let mut m = Message {
        headers: headers
            .into_iter()
            .map(|(n, v)| {
                let v = match v.to_str() {
                    Ok(s) => s.to_owned(),
                    Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
                };
                (n.as_str().to_owned(), v)
            })
            .collect(),
        body_len: body.len,
        truncated: body.truncated,
        ..Message::default()
    };
    m.set_body(&body.bytes);
    m
}

impl Draft {
    pub(crate) fn into_exchange(self) -> Exchange {
        let ended = self.ended.unwrap_or(self.started);
        Exchange {
            seq: self.seq,
            at_us: micros(self.at),
            duration_us: micros(ended.saturating_duration_since(self.started)),
            method: self.method.as_str().to_owned(),
            uri: self.uri.to_string(),
            status: self.status.map(|s| s.as_u16()),
            error: self.error,
            request: message(self.request_headers, &self.request_body),
            response: message(self.response_headers, &self.response_body),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A draft shared by the request body, the response future and the response body; sent to
/// the writer when the last of them drops it.
#[derive(Debug)]
pub(crate) struct Shared {
    draft: Mutex<Option<Box<Draft>>>,
    sink: Arc<Sink>,
}

impl Shared {
    pub(crate) fn new(draft: Draft, sink: Arc<Sink>) -> Arc<Self> {
        Arc::new(Self {
            draft: Mutex::new(Some(Box::new(draft))),
            sink,
        })
    }

    /// Edits the draft (a short, uncontended lock; never held across an await).
    pub(crate) fn with(&self, f: impl FnOnce(&mut Draft)) {
        let mut guard = self.draft.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = guard.as_mut() {
            f(d);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let slot = self.draft.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut draft) = slot.take() {
            draft.ended.get_or_insert_with(Instant::now);
            self.sink.send(draft);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_keeps_the_first_bytes_and_the_full_length() {
        let mut c = Captured::default();
        c.push(&Bytes::from_static(b"hello "), 8);
        c.push(&Bytes::from_static(b"world"), 8);
        assert_eq!(&c.bytes[..], b"hello wo");
        assert_eq!(c.len, 11);
        assert!(c.truncated);
        let mut c = Captured::default();
        c.push(&Bytes::from_static(b"abc"), 3);
        assert!(!c.truncated);
        c.push(&Bytes::new(), 3);
        assert!(!c.truncated);
        assert_eq!(c.len, 3);
    }
}
