use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::request::{AnyRequest, Http};
use palisade_core::{InstanceName, Listeners};
use tower_layer::Layer;

use crate::events::RateLimitEvent;
use crate::gcra::RateLimitDecision;
use crate::memory::{DEFAULT_IDLE_SWEEP, DEFAULT_MAX_KEYS, MemoryStore};
use crate::quota::QuotaSet;
use crate::service::RateLimit;

/// What happens to a request that does not conform right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum RateLimitMode {
    /// Server mode: refuse it with [`RateLimited`](palisade_core::RateLimited) (429).
    #[default]
    Reject,
    /// Client mode: hold it until a unit is available, at most
    /// [`max_wait`](RateLimitLayer::max_wait) and never past the request's
    /// [`Deadline`](palisade_core::Deadline); a longer wait is refused with `RateLimited`.
    /// The slot is reserved when the request arrives, so a request dropped while waiting
    /// still uses its unit.
    Wait,
}

#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) hasher: RandomState,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) default: QuotaSet,
    pub(crate) tiers: HashMap<u64, QuotaSet>,
    pub(crate) mode: RateLimitMode,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) response_headers: bool,
    pub(crate) shadow: bool,
    pub(crate) legacy_headers: bool,
    pub(crate) listeners: Listeners<RateLimitEvent>,
    pub(crate) max_keys: usize,
    pub(crate) idle_sweep: Duration,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::redis::RedisBackend>,
}

impl Shared {
    pub(crate) fn quotas_for(&self, hash: u64) -> &QuotaSet {
        if self.tiers.is_empty() {
            &self.default
        } else {
            self.tiers.get(&hash).unwrap_or(&self.default)
        }
    }
}

/// Applies [`RateLimit`] to a service.
///
/// Every service made from one layer (and every clone of those) shares one limiter state:
/// build one layer per route (or per group of routes) that should have its own limits.
///
/// Defaults: [`RateLimitMode::Reject`], no `max_wait` bound beyond the request's deadline, IETF
/// headers on successful responses, no legacy `X-RateLimit-*` headers, at most 100,000
/// tracked keys, idle keys swept every 60 s.
///
/// The mode `M` says what the services it builds read and write: [`Http`] (the default,
/// built by [`new`](RateLimitLayer::new): the request's
/// [`Deadline`](palisade_core::Deadline) bounds a wait, successful responses get the
/// `RateLimit` fields) or [`AnyRequest`] (built by
/// [`any_request`](RateLimitLayer::any_request): any request and response type, keyed by
/// a closure or any [`KeyExtractor`](palisade_core::KeyExtractor) for that type).
#[derive(Debug, Clone)]
pub struct RateLimitLayer<X, M = Http> {
    extractor: X,
    shared: Arc<Shared>,
    mode: PhantomData<fn() -> M>,
}

impl<X> RateLimitLayer<X> {
    /// Limits requests per key (`extractor`, e.g. [`PeerIp`](palisade_core::key::PeerIp)) to
    /// `quotas` (one [`Quota`](crate::Quota) or a [`QuotaSet`] that must all pass).
    pub fn new(extractor: X, quotas: impl Into<QuotaSet>) -> Self {
        Self::with_mode(extractor, quotas.into(), true)
    }

    /// Whether successful responses carry `RateLimit-Policy` and `RateLimit` in
    /// [`RateLimitMode::Reject`] (default `true`). Costs two header insertions per response and, when
    /// the `r`/`t` numbers differ from the last response built on the same thread, one small
    /// allocation for the `RateLimit` value. Client mode never writes them into upstream
    /// responses.
    #[must_use]
    pub fn response_headers(mut self, yes: bool) -> Self {
        self.shared_mut().response_headers = yes;
        self
    }

    /// Whether to add legacy `X-RateLimit-Limit/Remaining/Reset` (delta seconds) for the
    /// quota closest to exhaustion (default `false`).
    #[must_use]
    pub fn legacy_headers(mut self, yes: bool) -> Self {
        self.shared_mut().legacy_headers = yes;
        self
    }
}

impl<X> RateLimitLayer<X, AnyRequest> {
    /// Limits requests of any type (a broker producer's `Service<PublishRequest>`, a
    /// database call) per key to `quotas`. `extractor` is any
    /// [`KeyExtractor`](palisade_core::KeyExtractor) for the request type: a closure through
    /// [`key_fn`](palisade_core::key::key_fn), [`GlobalKey`](palisade_core::key::GlobalKey),
    /// or your own impl. The response is not touched (no `RateLimit` fields), and a wait
    /// ([`RateLimitMode::Wait`]) is bounded by [`max_wait`](Self::max_wait) alone, as such a
    /// request carries no [`Deadline`](palisade_core::Deadline). A refusal is the same
    /// [`RateLimited`](palisade_core::RateLimited) error, with its `retry_after`.
    pub fn any_request(extractor: X, quotas: impl Into<QuotaSet>) -> Self {
        Self::with_mode(extractor, quotas.into(), false)
    }
}

impl<X, M> RateLimitLayer<X, M> {
    fn with_mode(extractor: X, quotas: QuotaSet, response_headers: bool) -> Self {
        Self {
            extractor,
            mode: PhantomData,
            shared: Arc::new(Shared {
                hasher: RandomState::new(),
                store: Arc::new(MemoryStore::new(DEFAULT_MAX_KEYS, DEFAULT_IDLE_SWEEP)),
                default: quotas,
                tiers: HashMap::new(),
                mode: RateLimitMode::Reject,
                max_wait: None,
                response_headers,
                shadow: false,
                legacy_headers: false,
                listeners: Listeners::new().named("ratelimit"),
                max_keys: DEFAULT_MAX_KEYS,
                idle_sweep: DEFAULT_IDLE_SWEEP,
                #[cfg(feature = "redis")]
                redis: None,
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Gives the key `key` its own quotas (a tier, e.g. a paying API key). `key` must hash
    /// like the extracted key (`&str` for `String` keys, an `IpAddr` for IP keys).
    #[must_use]
    pub fn tier<Q: Hash + ?Sized>(mut self, key: &Q, quotas: impl Into<QuotaSet>) -> Self {
        let s = self.shared_mut();
        let h = s.hasher.hash_one(key);
        s.tiers.insert(h, quotas.into());
        self
    }

    /// Reject (server, default) or wait (client).
    #[must_use]
    pub fn mode(mut self, mode: RateLimitMode) -> Self {
        self.shared_mut().mode = mode;
        self
    }

    /// In [`RateLimitMode::Wait`], the longest a request may be held back (default: only the
    /// request's [`Deadline`](palisade_core::Deadline), if any, bounds it).
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.shared_mut().max_wait = Some(max_wait);
        self
    }

    /// Shadow (dry-run) mode for the whole layer (default `false`): every decision is
    /// computed and consumes units as usual, and recorded (a
    /// [`RateLimitEvent::WouldLimit`] instead of `Limited`, hence the metric
    /// `palisade_ratelimit_decisions_total{decision="would_limit"}`), but no request is
    /// refused or held back. Successful responses carry the `RateLimit` fields of the
    /// decision if [`response_headers`](RateLimitLayer::response_headers) is on (`r=0` where the
    /// limit would bite); turn it off so that clients do not back off from a limit that is
    /// not enforced yet. Use it to roll out a new limit, then turn it off. For one quota
    /// of a set only, see [`Quota::shadow`](crate::Quota::shadow).
    #[must_use]
    pub fn shadow(mut self, yes: bool) -> Self {
        self.shared_mut().shadow = yes;
        self
    }

    /// The most keys tracked in memory at once (default 100,000; at least 1). Resets the
    /// state.
    #[must_use]
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        let s = self.shared_mut();
        s.max_keys = max_keys.max(1);
        s.store = Arc::new(MemoryStore::new(s.max_keys, s.idle_sweep));
        self
    }

    /// How often idle keys are swept (default 60 s). Resets the state.
    #[must_use]
    pub fn idle_sweep(mut self, every: Duration) -> Self {
        let s = self.shared_mut();
        s.idle_sweep = every;
        s.store = Arc::new(MemoryStore::new(s.max_keys, s.idle_sweep));
        self
    }

    /// The limiter's instance name, carried by its events so metrics label it
    /// (`ratelimit="api"`). Default `"ratelimit"`. (The Redis bucket name is
    /// [`redis`](Self::redis)'s `layer_name`.)
    #[must_use]
    pub fn name(mut self, name: impl Into<InstanceName>) -> Self {
        let s = self.shared_mut();
        s.listeners = std::mem::take(&mut s.listeners).named(name);
        self
    }

    /// Adds a listener for this layer's [`RateLimitEvent`]s.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&RateLimitEvent) + Send + Sync + 'static) -> Self {
        let s = self.shared_mut();
        s.listeners = std::mem::take(&mut s.listeners).on(f);
        self
    }

    /// Shares the limits across instances through Redis; the in-memory state then only
    /// serves [`FailAction::Local`](crate::FailAction::Local).
    ///
    /// `layer_name` names this layer's buckets (say the route, `"checkout"`): it is part of
    /// every Redis key (see [`redis`](crate::redis)), so two layers sharing one Redis and
    /// policy names still keep separate buckets, as two in-memory limiters do. Give layers
    /// that must share buckets the same name, and every instance of one layer the same
    /// name.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    #[must_use]
    pub fn redis(mut self, layer_name: &str, backend: crate::redis::RedisBackend) -> Self {
        self.shared_mut().redis = Some(backend.layer_name(layer_name));
        self
    }

    /// The default quotas.
    pub fn quotas(&self) -> &QuotaSet {
        &self.shared.default
    }

    /// Decides one request for `key` against the in-memory state, as the service does in
    /// [`RateLimitMode::Reject`] (tiers included), consuming its units if admitted. For limiting
    /// work that is not a Tower request.
    pub fn check<Q: Hash + ?Sized>(&self, key: &Q) -> RateLimitDecision {
        let hash = self.shared.hasher.hash_one(key);
        let set = self.shared.quotas_for(hash);
        self.shared.store.decide(hash, set.quotas(), None)
    }

    /// Keys tracked in memory now.
    pub fn tracked_keys(&self) -> usize {
        self.shared.store.len()
    }

    /// Drops idle keys now (they would be admitted as fresh keys anyway); returns how many.
    pub fn sweep_idle(&self) -> usize {
        self.shared.store.sweep_idle()
    }
}

impl<S, X: Clone, M> Layer<S> for RateLimitLayer<X, M> {
    type Service = RateLimit<S, X, M>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::from_parts(inner, self.extractor.clone(), self.shared.clone())
    }
}
