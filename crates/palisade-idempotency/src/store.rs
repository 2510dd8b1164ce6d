//! The [`Store`] trait: an in-flight lock with a lease and fencing token, plus the stored
//! response, per scoped key.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

/// A boxed store future.
///
/// Boxing at the store boundary is deliberate: every request that reaches the store already
/// allocates (the buffered body, the scoped key, the stored record), so one more allocation
/// keeps the trait object-friendly and the Redis implementation simple. Requests that pass
/// through (other methods, no key on an optional route) never reach the store.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// SHA-256 of what identifies a request's payload (method, path and query, body).
pub type Fingerprint = [u8; 32];

/// A response as stored for replay: status, allowlisted headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The status code.
    pub status: StatusCode,
    /// The stored headers, in order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The complete body.
    pub body: Bytes,
}

impl StoredResponse {
    /// Serializes to a compact binary form (used by the Redis store).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            8 + self.body.len()
                + self
                    .headers
                    .iter()
                    .map(|(n, v)| 6 + n.as_str().len() + v.len())
                    .sum::<usize>(),
        );
        out.extend_from_slice(&self.status.as_u16().to_be_bytes());
        out.extend_from_slice(&(self.headers.len() as u16).to_be_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(&(name.as_str().len() as u16).to_be_bytes());
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses what [`encode`](Self::encode) wrote; `None` if malformed.
    pub fn decode(mut input: &[u8]) -> Option<Self> {
        fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if input.len() < n {
                return None;
            }
            let (head, tail) = input.split_at(n);
            *input = tail;
            Some(head)
        }
        let status = u16::from_be_bytes(take(&mut input, 2)?.try_into().ok()?);
        let status = StatusCode::from_u16(status).ok()?;
        let count = u16::from_be_bytes(take(&mut input, 2)?.try_into().ok()?);
        let mut headers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let n = u16::from_be_bytes(take(&mut input, 2)?.try_into().ok()?);
            let name = HeaderName::from_bytes(take(&mut input, usize::from(n))?).ok()?;
            let n = u32::from_be_bytes(take(&mut input, 4)?.try_into().ok()?);
            let value = HeaderValue::from_bytes(take(&mut input, n as usize)?).ok()?;
            headers.push((name, value));
        }
        Some(Self {
            status,
            headers,
            body: Bytes::copy_from_slice(input),
        })
    }
}

/// The answer to [`Store::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The caller holds the lock until the lease runs out; it must
    /// [`complete`](Store::complete) or [`release`](Store::release) with this token.
    Started {
        /// The fencing token: larger than every token issued before for this key.
        fencing_token: u64,
        /// A previous holder's lease had expired without completing (it crashed or hung).
        took_over_expired: bool,
    },
    /// Another request with this key and fingerprint holds a live lease.
    InFlight,
    /// A response is stored for this key and fingerprint.
    Completed(Arc<StoredResponse>),
    /// The key is in use (in flight or completed) with a different fingerprint.
    Mismatch,
}

/// The store could not be reached or answered nonsense. The layer answers
/// [`StoreUnavailable`](palisade_core::StoreUnavailable) (503) and never runs the handler.
#[derive(Debug)]
pub struct StoreError(pub(crate) String);

impl StoreError {
    /// An error with a message.
    pub fn new(message: impl fmt::Display) -> Self {
        Self(message.to_string())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "idempotency store error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Where idempotency records live: memory ([`MemoryStore`](crate::MemoryStore)) or Redis
/// (`RedisStore`, feature `redis`).
///
/// A record is either a lock (fingerprint, fencing token, lease deadline) or a completed
/// response (fingerprint, response), kept for `ttl`. Cloning shares the same records.
pub trait Store: Clone + Send + Sync + 'static {
    /// Looks `key` up and, if it is unseen (or its lock's lease expired), locks it for
    /// `lease` and returns a new fencing token. A started record lives at most `ttl`.
    fn begin<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> StoreFuture<'a, Begin>;

    /// Stores `response` for `ttl` if `fencing_token` still holds the lock (compare-and-set).
    /// Returns `false` if it does not (the lease expired and someone else took over, or the
    /// record expired): the late finisher's result is discarded.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        fencing_token: u64,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Drops the lock if `fencing_token` still holds it, so the key can be retried.
    fn release<'a>(&'a self, key: &'a str, fencing_token: u64) -> StoreFuture<'a, bool>;

    /// Extends the lease of a held lock to `lease` from now if `fencing_token` still holds
    /// it and its lease has not run out. The layer calls this while the handler runs, so a
    /// short lease only bounds how long a *crashed* holder blocks the key.
    fn renew<'a>(
        &'a self,
        key: &'a str,
        fencing_token: u64,
        lease: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Releases synchronously if the store can (memory can; Redis cannot). Called from drop
    /// guards; returns `false` when the caller must spawn [`release`](Self::release).
    fn release_now(&self, key: &str, fencing_token: u64) -> bool {
        let _ = (key, fencing_token);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            status in 100u16..600,
            headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,20}", "[ -~]{0,40}"), 0..5),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let r = StoredResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
                    .collect(),
                body: Bytes::from(body),
            };
            prop_assert_eq!(StoredResponse::decode(&r.encode()), Some(r));
        }
    }

    #[test]
    fn decode_rejects_truncated() {
        let r = StoredResponse {
            status: StatusCode::CREATED,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: Bytes::from_static(b"{}"),
        };
        let enc = r.encode();
        for n in 0..enc.len() - 2 {
            assert_eq!(StoredResponse::decode(&enc[..n]), None, "prefix {n}");
        }
    }
}
