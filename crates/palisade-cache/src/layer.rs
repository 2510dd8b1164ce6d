//! [`CacheLayer`]: settings of the HTTP cache.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderName;
use palisade_core::Listeners;
use tower_layer::Layer;

use crate::events::CacheEvent;
use crate::flight::Flights;
use crate::freshness::{Clock, Heuristic};
use crate::memory::MemoryStore;
use crate::service::Cache;
use crate::store::CacheStore;

/// Default [`CacheLayer::max_body_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default [`CacheLayer::max_ttl`]: one day.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default [`CacheLayer::max_variants`].
pub const DEFAULT_MAX_VARIANTS: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct Settings<St> {
    pub(crate) store: St,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_ttl: Duration,
    pub(crate) max_variants: usize,
    pub(crate) heuristic: Option<Heuristic>,
    pub(crate) status_header: Option<HeaderName>,
    pub(crate) key_headers: Vec<HeaderName>,
    pub(crate) targeted_field: Option<HeaderName>,
    pub(crate) clock: Clock,
    pub(crate) listeners: Listeners<CacheEvent>,
    /// Keys with a background refresh running (one per key, RFC 5861 §3).
    pub(crate) refreshing: Arc<Mutex<HashSet<u64>>>,
    /// Misses in flight, when coalescing is on.
    pub(crate) flights: Option<Arc<Flights>>,
}

/// Applies a shared HTTP cache (RFC 9111) to a service; see the [crate docs](crate).
///
/// Setters take values as given and clamp them to their documented bounds; use
/// [`CacheConfig`](crate::CacheConfig) for checked configuration.
#[derive(Debug, Clone)]
pub struct CacheLayer<St = MemoryStore> {
    settings: Settings<St>,
}

impl CacheLayer<MemoryStore> {
    /// A cache in memory holding at most `max_bytes` of responses.
    pub fn memory(max_bytes: u64) -> Self {
        Self::new(MemoryStore::new(max_bytes))
    }
}

impl<St: CacheStore> CacheLayer<St> {
    /// A cache on `store` with the defaults: bodies up to 1 MiB stored, heuristic
    /// freshness off, no status header, `CDN-Cache-Control` honoured (RFC 9213).
    pub fn new(store: St) -> Self {
        Self {
            settings: Settings {
                store,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                max_ttl: DEFAULT_MAX_TTL,
                max_variants: DEFAULT_MAX_VARIANTS,
                heuristic: None,
                status_header: None,
                key_headers: Vec::new(),
                targeted_field: Some(HeaderName::from_static("cdn-cache-control")),
                clock: Clock::new(),
                listeners: Listeners::new().named("cache"),
                refreshing: Arc::default(),
                flights: Some(Arc::default()),
            },
        }
    }

    /// The store (clones share it).
    pub fn store(&self) -> &St {
        &self.settings.store
    }

    /// Responses with a larger body are streamed through, not stored (clamped to at
    /// least 1).
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_body_bytes = bytes.max(1);
        self
    }

    /// How long an entry may stay in the store at most, fresh or stale (clamped to 1 s –
    /// 365 days). Entries without validators leave as soon as no stale window can use them.
    #[must_use]
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.settings.max_ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(365 * 86400));
        self
    }

    /// How many `Vary` variants one URI keeps (clamped to 1 – 64); the oldest goes first.
    #[must_use]
    pub fn max_variants(mut self, n: usize) -> Self {
        self.settings.max_variants = n.clamp(1, 64);
        self
    }

    /// Turns on heuristic freshness (RFC 9111 §4.2.2) for responses without explicit
    /// freshness: `percent` of the time since `Last-Modified`, at most `max`.
    #[must_use]
    pub fn heuristic(mut self, heuristic: Heuristic) -> Self {
        self.settings.heuristic = Some(Heuristic {
            percent: heuristic.percent.clamp(1, 100),
            max: heuristic.max,
        });
        self
    }

    /// Whether concurrent misses of one key wait for a single upstream call (on by
    /// default). The first request goes upstream; the others wait for it, then are answered
    /// from storage, or go upstream on their own when its response was not stored (an
    /// error, `no-store`, `private`, a body over the limit) or does not fit them (`Vary`).
    /// Only plain `GET`s wait: no `Authorization`, `Range` or conditional header.
    /// A waiting request that is dropped does not affect the call it waits for; when
    /// that call is dropped, a waiting request takes over.
    #[must_use]
    pub fn coalesce(mut self, on: bool) -> Self {
        self.settings.flights = on.then(Arc::default);
        self
    }

    /// Adds a status header (e.g. `x-cache`) with `hit`, `miss`, `stale` or `revalidated`.
    #[must_use]
    pub fn status_header(mut self, name: HeaderName) -> Self {
        self.settings.status_header = Some(name);
        self
    }

    /// Adds a request header to the primary key (per-tenant caching: `x-tenant-id`).
    #[must_use]
    pub fn key_header(mut self, name: HeaderName) -> Self {
        if !self.settings.key_headers.contains(&name) {
            self.settings.key_headers.push(name);
        }
        self
    }

    /// The targeted cache-control field (RFC 9213) this cache obeys instead of
    /// `Cache-Control` when a response carries it; `None` to obey `Cache-Control` only.
    #[must_use]
    pub fn targeted_field(mut self, name: Option<HeaderName>) -> Self {
        self.settings.targeted_field = name;
        self
    }

    /// The clock relating `Date`/`Expires` to tokio's time (tests anchor it to a whole
    /// second).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.settings.clock = clock;
        self
    }

    /// The layer's instance name, carried by its events so metrics label it. Default
    /// `"cache"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<palisade_core::InstanceName>) -> Self {
        let listeners = std::mem::take(&mut self.settings.listeners);
        self.settings.listeners = listeners.named(name);
        self
    }

    /// Listeners for [`CacheEvent`]s.
    #[must_use]
    pub fn listeners(mut self, listeners: Listeners<CacheEvent>) -> Self {
        self.settings.listeners = if listeners.instance().is_empty() {
            listeners.named(self.settings.listeners.instance().clone())
        } else {
            listeners
        };
        self
    }
}

impl<S, St: CacheStore> Layer<S> for CacheLayer<St> {
    type Service = Cache<S, St>;

    fn layer(&self, inner: S) -> Cache<S, St> {
        self.settings
            .store
            .attach(&self.settings.listeners, &self.settings.clock);
        Cache::from_settings(inner, Arc::new(self.settings.clone()))
    }
}
