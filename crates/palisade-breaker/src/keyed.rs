//! One breaker per key (upstream host, route, tenant), with a bounded number of keys.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use palisade_core::config::check_instance_name;
use palisade_core::keyed::KeyedStore;
use palisade_core::{BoxError, Classifier, ConfigError, InstanceName, KeyExtractor, Listeners};
use std::time::Duration;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::BreakerConfig;
use crate::events::BreakerEvent;
use crate::future::{Guard, ResponseFuture};
use crate::handle::BreakerHandle;
use crate::layer::DEFAULT_NAME;
use crate::machine::{Settings, State};
use crate::shared::Breaker;

/// The default cap on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// The default time after which an unused key's breaker is dropped (unless pinned).
pub const DEFAULT_KEY_IDLE: Duration = Duration::from_secs(3_600);

/// Longest accepted [`idle_timeout`](KeyedCircuitBreakerLayer::idle_timeout): 7 days.
const MAX_KEY_IDLE: Duration = Duration::from_secs(7 * 86_400);

/// A key's breaker must stay tracked while it holds state worth more than a fresh one:
/// OPEN until its wait is over, HALF_OPEN (its probes decide), and the states set by hand
/// (FORCED_OPEN, DISABLED, METRICS_ONLY). A CLOSED breaker only loses its window.
fn pinned(b: &Arc<Breaker>, now: Instant) -> bool {
    b.pinned(now)
}

struct Registry<K> {
    settings: Settings,
    listeners: Listeners<BreakerEvent>,
    store: KeyedStore<K, Arc<Breaker>>,
}

impl<K: Hash + Eq + Clone> Registry<K> {
    fn new(
        settings: Settings,
        listeners: Listeners<BreakerEvent>,
        max_keys: usize,
        idle: Duration,
    ) -> Self {
        Self {
            settings,
            listeners,
            store: KeyedStore::new(max_keys, idle).pin_while(pinned),
        }
    }

    fn fresh(&self) -> Arc<Breaker> {
        Breaker::new(self.settings.clone(), self.listeners.clone())
    }

    /// The breaker of `key`, made if new. At the cap the least recently used evictable
    /// breaker is dropped; if none is found the call gets a breaker of its own that is not
    /// kept (it starts CLOSED, like any new key, and never affects other keys).
    fn get(&self, key: &K) -> Arc<Breaker> {
        self.store
            .get_or_insert_with(key, || self.fresh())
            .unwrap_or_else(|_| self.fresh())
    }

    fn rebuilt(&self, listeners: Listeners<BreakerEvent>, max_keys: usize, idle: Duration) -> Self {
        Self::new(self.settings.clone(), listeners, max_keys, idle)
    }
}

/// Applies a [`KeyedCircuitBreaker`]: one breaker per key from a
/// [`KeyExtractor`], at most `max_keys` of them.
///
/// The breakers live in palisade-core's [`KeyedStore`]: finding a key's breaker is one hash
/// lookup under one of up to 16 shard locks, O(1) whatever the number of keys.
///
/// - **At the cap** (`max_keys` tracked), a new key evicts the least recently used breaker
///   that is CLOSED or whose OPEN wait is over. Breakers that are OPEN (wait running),
///   HALF_OPEN or in a state set by hand are never evicted, so an upstream that is down
///   stays cut off. If none of the oldest 16 breakers may be evicted, the new key's call
///   goes through a fresh breaker that is not kept: it is neither refused nor affected by
///   other keys (there is no shared overflow breaker), but that key has no memory until a
///   slot frees.
/// - **Idle keys** (no call for [`idle_timeout`](Self::idle_timeout), default 1 h) are
///   dropped under the same rule, a few per call, so memory follows the active keys.
///
/// ```
/// use palisade_breaker::{BreakerConfig, KeyedCircuitBreakerLayer};
/// use palisade_core::key::key_fn;
/// use palisade_core::KeyError;
///
/// let by_host = key_fn(|r: &http::Request<()>| {
///     r.uri().host().map(str::to_owned).ok_or(KeyError::Missing { what: "host" })
/// });
/// let layer = KeyedCircuitBreakerLayer::new(by_host, &BreakerConfig::default(), 1_000).unwrap();
/// assert_eq!(layer.state_of(&"api.example.com".to_owned()), None); // not seen yet
/// ```
pub struct KeyedCircuitBreakerLayer<X: KeyExtractor<R>, R, C = palisade_core::DefaultClassifier> {
    extractor: X,
    registry: Arc<Registry<X::Key>>,
    classifier: C,
    _req: std::marker::PhantomData<fn(R)>,
}

impl<X: KeyExtractor<R>, R, C: Clone> Clone for KeyedCircuitBreakerLayer<X, R, C> {
    fn clone(&self) -> Self {
        Self {
            extractor: self.extractor.clone(),
            registry: self.registry.clone(),
            classifier: self.classifier.clone(),
            _req: std::marker::PhantomData,
        }
    }
}

impl<X: KeyExtractor<R>, R, C> fmt::Debug for KeyedCircuitBreakerLayer<X, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("keys", &self.registry.store.len())
            .finish_non_exhaustive()
    }
}

impl<X: KeyExtractor<R>, R> KeyedCircuitBreakerLayer<X, R> {
    /// One breaker per key, each with `config`, at most `max_keys` (1–1,000,000) tracked.
    pub fn new(extractor: X, config: &BreakerConfig, max_keys: usize) -> Result<Self, ConfigError> {
        palisade_core::config::check_range("max_keys", max_keys, 1, 1_000_000)?;
        if config.fleet.is_some() {
            return Err(ConfigError::new(
                "fleet",
                "keyed breakers are not shared across a fleet (one breaker per key and instance)",
            ));
        }
        let settings = config.validate()?;
        let listeners = Listeners::new().named(match &config.name {
            Some(name) => {
                check_instance_name("name", name)?;
                InstanceName::from(name)
            }
            None => InstanceName::new_static(DEFAULT_NAME),
        });
        Ok(Self {
            extractor,
            registry: Arc::new(Registry::new(
                settings,
                listeners,
                max_keys,
                DEFAULT_KEY_IDLE,
            )),
            classifier: palisade_core::DefaultClassifier::new(),
            _req: std::marker::PhantomData,
        })
    }
}

impl<X: KeyExtractor<R>, R, C> KeyedCircuitBreakerLayer<X, R, C> {
    /// Replaces the failure classifier.
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> KeyedCircuitBreakerLayer<X, R, C2> {
        KeyedCircuitBreakerLayer {
            extractor: self.extractor,
            registry: self.registry,
            classifier,
            _req: std::marker::PhantomData,
        }
    }
    /// Adds a listener for the [`BreakerEvent`]s of every key's breaker (events do not
    /// carry the key). Call it while configuring, before the layer is used: it starts a
    /// fresh, empty set of breakers. Same delivery rules as
    /// [`CircuitBreakerBuilder::on_event`](crate::CircuitBreakerBuilder::on_event).
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&BreakerEvent) + Send + Sync + 'static) -> Self {
        let r = &self.registry;
        let listeners = r.listeners.clone().on(f);
        self.registry = Arc::new(r.rebuilt(listeners, r.store.max_keys(), r.store.idle()));
        self
    }
    /// Names the keyed breaker (every key's breaker carries this name in its events; the
    /// key is not in them), overriding the config's `name`. Call it while configuring: it
    /// starts a fresh, empty set of breakers. 1–128 visible ASCII characters.
    pub fn name(mut self, name: impl Into<InstanceName>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_instance_name("name", &name)?;
        let r = &self.registry;
        let listeners = r.listeners.clone().named(name);
        self.registry = Arc::new(r.rebuilt(listeners, r.store.max_keys(), r.store.idle()));
        Ok(self)
    }
    /// Drops a key's breaker after `idle` without calls (1 ms–7 days; default 1 h), unless
    /// it is OPEN with its wait running, HALF_OPEN or in a state set by hand. Call it while
    /// configuring: it starts a fresh, empty set of breakers.
    pub fn idle_timeout(mut self, idle: Duration) -> Result<Self, ConfigError> {
        palisade_core::config::check_duration(
            "idle_timeout",
            idle,
            Duration::from_millis(1),
            MAX_KEY_IDLE,
        )?;
        let r = &self.registry;
        self.registry = Arc::new(r.rebuilt(r.listeners.clone(), r.store.max_keys(), idle));
        Ok(self)
    }
    /// The state of `key`'s breaker, if it is tracked.
    pub fn state_of(&self, key: &X::Key) -> Option<State> {
        self.registry.store.get(key).map(|b| b.state())
    }
    /// A handle on `key`'s breaker, creating it if needed. A breaker forced by hand
    /// (FORCED_OPEN, DISABLED, METRICS_ONLY) stays tracked until reset. At the cap, when
    /// no breaker may be evicted, the handle is on a breaker that is not kept (as for a
    /// request in that case).
    pub fn handle_of(&self, key: &X::Key) -> BreakerHandle {
        BreakerHandle {
            breaker: self.registry.get(key),
        }
    }
    /// Number of tracked keys.
    pub fn tracked_keys(&self) -> usize {
        self.registry.store.len()
    }
}

impl<S, X: KeyExtractor<R>, R, C: Clone> Layer<S> for KeyedCircuitBreakerLayer<X, R, C> {
    type Service = KeyedCircuitBreaker<S, X, R, C>;
    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            layer: self.clone(),
        }
    }
}

/// A circuit breaker per key; see [`KeyedCircuitBreakerLayer`]. A request whose key cannot
/// be extracted is refused with [`KeyError`](palisade_core::KeyError) (400).
pub struct KeyedCircuitBreaker<S, X: KeyExtractor<R>, R, C> {
    inner: S,
    layer: KeyedCircuitBreakerLayer<X, R, C>,
}

impl<S: Clone, X: KeyExtractor<R>, R, C: Clone> Clone for KeyedCircuitBreaker<S, X, R, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, X: KeyExtractor<R>, R, C> fmt::Debug for KeyedCircuitBreaker<S, X, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, X: KeyExtractor<R>, R, C> KeyedCircuitBreaker<S, X, R, C> {
    palisade_core::define_inner_service_accessors!();
}

impl<S, X, R, C> Service<R> for KeyedCircuitBreaker<S, X, R, C>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    X: KeyExtractor<R>,
    C: Classifier<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = crate::future::KeyedResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let key = match self.layer.extractor.extract(&req) {
            Ok(k) => k,
            Err(e) => return crate::future::KeyedResponseFuture::bad_key(e),
        };
        let breaker = self.layer.registry.get(&key);
        let fut = match breaker.acquire() {
            Ok(permit) => ResponseFuture::called(
                self.inner.call(req),
                Guard::new(breaker, permit, Instant::now()),
                self.layer.classifier.clone(),
            ),
            Err(open) => ResponseFuture::rejected(open),
        };
        crate::future::KeyedResponseFuture::inner(fut)
    }
}
