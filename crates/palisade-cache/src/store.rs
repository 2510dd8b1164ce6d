//! What the cache stores and the [`CacheStore`] trait behind it.
//!
//! A store maps a primary key (a 64-bit hash of host, path and query, and any configured key
//! headers) to an [`Entry`]: the key's full text, to rule out hash collisions, and up to a
//! few [`StoredResponse`] variants, one per set of `Vary`ed request header values.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode, Version};
use tokio::time::Instant;

use palisade_core::Listeners;

use crate::directives::ResponseDirectives;
use crate::events::CacheEvent;

/// Bytes one slot of a `HeaderMap` occupies: its entry (hash, name, value, links: 104 bytes
/// on 64-bit targets) and its share of the index table (a 4-byte position per 3/4 slot).
/// Slots are counted by [`HeaderMap::capacity`], so spare room is counted too.
const HEADER_SLOT: usize = 112;
/// What the allocator adds to every live allocation (glibc: an 8-byte header, rounding to
/// 16 bytes), counted once per allocation the weight knows of.
const ALLOCATION: usize = 16;
/// The memory store's own bookkeeping per entry: moka's value entry, key/hash node, access
/// and write order deque nodes, timer wheel node and hash table bucket, with their
/// allocation overhead. Measured on 2026-12-07 (moka 0.12.16, 64-bit Linux, glibc) with a
/// counting allocator: 277 bytes in 6 allocations per entry.
const STORE_NODE: usize = 277 + 6 * ALLOCATION;

/// Heap bytes of `headers`: its slots, the value bytes it owns, and the names' bytes (a
/// standard name owns none and a custom one its text plus an allocation; counting every
/// name's text keeps the estimate close for both without telling them apart).
fn header_bytes(headers: &HeaderMap) -> usize {
    let owned: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + ALLOCATION)
        .sum();
    let tables = if headers.capacity() == 0 {
        0
    } else {
        2 * ALLOCATION
    };
    headers.capacity() * HEADER_SLOT + tables + owned
}

/// One stored response (one variant of a URI).
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// Status code.
    pub status: StatusCode,
    /// HTTP version.
    pub version: Version,
    /// Header fields as stored (a `Date` is added when the origin sent none).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The request header values this variant was selected by: each name of the
    /// response's `Vary`, with the request's normalised value (`None` when absent).
    pub vary: Box<[(HeaderName, Option<Box<str>>)]>,
    /// When the response (or the last 304 that refreshed it) was received.
    pub response_time: Instant,
    /// `corrected_initial_age` of RFC 9111 §4.2.3.
    pub initial_age: Duration,
    /// Freshness lifetime (§4.2.1), computed when stored or refreshed.
    pub lifetime: Duration,
    /// The directives that govern reuse (from the targeted field or `Cache-Control`).
    pub directives: ResponseDirectives,
}

impl StoredResponse {
    /// `current_age` of RFC 9111 §4.2.3 at `now`.
    pub fn current_age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.response_time)
    }

    /// Whether the response has a validator (`ETag` or `Last-Modified`).
    pub fn has_validator(&self) -> bool {
        self.headers.contains_key(http::header::ETAG)
            || self.headers.contains_key(http::header::LAST_MODIFIED)
    }

    /// The heap bytes this variant occupies, used to bound a store by bytes: the body, the
    /// `StoredResponse` in its `Arc`, the header map's slots (by capacity) and the values
    /// and names it owns, the `Vary` values, and the allocator's overhead per allocation.
    /// Exact for responses the cache stored itself, which own their body and header values
    /// (copied when stored, so that no buffer they were parsed from is kept alive).
    pub fn weight(&self) -> usize {
        let vary: usize = self
            .vary
            .iter()
            .map(|(k, v)| {
                std::mem::size_of::<(HeaderName, Option<Box<str>>)>()
                    + k.as_str().len()
                    + v.as_ref().map_or(0, |v| v.len() + ALLOCATION)
            })
            .sum::<usize>()
            + if self.vary.is_empty() { 0 } else { ALLOCATION };
        let body = if self.body.is_empty() {
            0
        } else {
            self.body.len() + ALLOCATION
        };
        body + header_bytes(&self.headers)
            + vary
            + std::mem::size_of::<Self>()
            + 2 * std::mem::size_of::<usize>() // the Arc's counts
            + ALLOCATION
    }
}

/// Everything stored under one primary key.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key's full text (host, path and query, key header values), compared on every
    /// lookup so that a hash collision is a miss, never a wrong answer.
    pub key: Box<str>,
    /// The variants, most recently stored last.
    pub variants: Vec<Arc<StoredResponse>>,
}

impl Entry {
    /// The heap bytes of the entry (see [`StoredResponse::weight`]): its variants, the
    /// `Entry` in its `Arc`, the key text, the variant list, and a memory store's own node
    /// per entry (measured, see the crate's README).
    pub fn weight(&self) -> usize {
        let own = std::mem::size_of::<Self>()
            + 2 * std::mem::size_of::<usize>()
            + ALLOCATION
            + self.key.len()
            + ALLOCATION
            + self.variants.capacity() * std::mem::size_of::<Arc<StoredResponse>>()
            + ALLOCATION;
        own + STORE_NODE + self.variants.iter().map(|v| v.weight()).sum::<usize>()
    }
}

/// Storage for the cache. Implementations must be cheap to clone, clones sharing one store.
///
/// Methods return futures so that a networked store (Redis) fits; a store that can answer
/// without waiting also implements [`get_now`](Self::get_now), which lets the layer serve a
/// fresh hit without boxing a future.
pub trait CacheStore: Clone + Send + Sync + 'static {
    /// The entry under `key`, if any. Store failures are logged and read as a miss.
    fn get(&self, key: u64) -> impl Future<Output = Option<Arc<Entry>>> + Send;

    /// Stores `entry` under `key` for at most `ttl` (a memory backstop: freshness is
    /// decided by the layer, on tokio's clock).
    fn insert(&self, key: u64, entry: Arc<Entry>, ttl: Duration)
    -> impl Future<Output = ()> + Send;

    /// Removes the entry under `key`.
    fn remove(&self, key: u64) -> impl Future<Output = ()> + Send;

    /// A synchronous lookup: `Some(answer)` when the store can answer without waiting,
    /// `None` when the caller must use [`get`](Self::get).
    fn get_now(&self, key: u64) -> Option<Option<Arc<Entry>>> {
        let _ = key;
        None
    }

    /// Called by [`CacheLayer`](crate::CacheLayer) with its listeners and clock when it
    /// makes a service, so that a store that evicts on its own can emit
    /// [`CacheEvent::Evicted`] and one that stores times as wall-clock time converts them
    /// with the layer's clock. The default ignores both.
    fn attach(&self, listeners: &Listeners<CacheEvent>, clock: &crate::Clock) {
        let _ = (listeners, clock);
    }

    /// Bytes held now by the store's own accounting, when it keeps one (the memory store
    /// does; a remote store answers `None`).
    fn bytes_in_use(&self) -> Option<u64> {
        None
    }

    /// The store's byte bound, when it has one.
    fn max_bytes(&self) -> Option<u64> {
        None
    }
}
