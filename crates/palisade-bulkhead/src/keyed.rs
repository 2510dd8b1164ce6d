//! Per-key bulkheads: one bulkhead per tenant (or any key), bounded key count.

use std::any::{Any, type_name};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_core::keyed::KeyedStore;
use palisade_core::{BoxError, KeyExtractor, Listeners};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::adaptive::Adaptive;
use crate::admission::Admission;
use crate::error::KeyTypeMismatch;
use crate::events::{BulkheadEvent, RejectReason};
use crate::future::ResponseFuture;
use crate::handle::BulkheadHandle;
use crate::priority::Priority;
use crate::release::Release;
use crate::service::admit;

/// The settings each key's bulkhead starts from.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) limit: usize,
    pub(crate) max_queue: usize,
    pub(crate) reserve: Box<[usize]>,
    pub(crate) adaptive: Option<Adaptive>,
    pub(crate) listeners: Listeners<BulkheadEvent>,
}

/// The store of one key type.
struct Typed<Key> {
    store: KeyedStore<Key, Arc<Admission>>,
}

/// What the layer needs from its store without knowing the key type.
trait Erased: Send + Sync {
    fn as_any(&self) -> &(dyn Any + Send + Sync);
    fn key_type(&self) -> &'static str;
    fn len(&self) -> usize;
}

impl<Key: Clone + Eq + Hash + Send + Sync + 'static> Erased for Typed<Key> {
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
    fn key_type(&self) -> &'static str {
        type_name::<Key>()
    }
    fn len(&self) -> usize {
        self.store.len()
    }
}

/// A key's bulkhead is in use while anything besides the store holds it: a permit, a queued
/// waiter, a request being admitted, or a [`BulkheadHandle`]. Evicting it then would lose
/// its in-flight count (a new bulkhead for the key would admit `limit` more calls).
fn in_use(a: &Arc<Admission>, _: Instant) -> bool {
    Arc::strong_count(a) > 1
}

/// State shared by a keyed layer, its services and their clones.
pub(crate) struct KeyedShared {
    template: Template,
    max_keys: usize,
    idle: Duration,
    /// A `Typed<Key>` for the extractor's key type, made by the first request (the key type
    /// is only known once the request type is).
    map: OnceLock<Box<dyn Erased>>,
}

impl fmt::Debug for KeyedShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedShared")
            .field("template", &self.template)
            .field("max_keys", &self.max_keys)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl KeyedShared {
    pub(crate) fn new(template: Template, max_keys: usize, idle: Duration) -> Self {
        Self {
            template,
            max_keys,
            idle,
            map: OnceLock::new(),
        }
    }

    /// The store for `Key`, made on first use; `Err` if the layer already stores another
    /// key type (one layer used with two extractors' key types).
    fn store<Key: Clone + Eq + Hash + Send + Sync + 'static>(
        &self,
    ) -> Result<&KeyedStore<Key, Arc<Admission>>, KeyTypeMismatch> {
        let erased = self.map.get_or_init(|| {
            Box::new(Typed::<Key> {
                store: KeyedStore::new(self.max_keys, self.idle).pin_while(in_use),
            })
        });
        Self::downcast(&**erased)
    }

    fn downcast<Key: 'static>(
        erased: &dyn Erased,
    ) -> Result<&KeyedStore<Key, Arc<Admission>>, KeyTypeMismatch> {
        erased
            .as_any()
            .downcast_ref::<Typed<Key>>()
            .map(|t| &t.store)
            .ok_or(KeyTypeMismatch {
                expected: erased.key_type(),
                given: type_name::<Key>(),
            })
    }

    /// The bulkhead of `key`, made if new; `Ok(None)` when `max_keys` keys are in use.
    fn get<Key: Clone + Eq + Hash + Send + Sync + 'static>(
        &self,
        key: &Key,
    ) -> Result<Option<Arc<Admission>>, KeyTypeMismatch> {
        let t = &self.template;
        let made = self.store::<Key>()?.get_or_insert_with(key, || {
            Arc::new(Admission::new(
                t.limit,
                t.max_queue,
                t.reserve.clone(),
                t.adaptive,
                t.listeners.clone(),
            ))
        });
        Ok(made.ok())
    }
}

/// Applies a [`KeyedBulkhead`]; made by
/// [`BulkheadBuilder::build_keyed`](crate::BulkheadBuilder::build_keyed).
pub struct KeyedBulkheadLayer<K, P, Rel> {
    pub(crate) shared: Arc<KeyedShared>,
    pub(crate) extractor: K,
    pub(crate) priority: P,
    pub(crate) max_queue_wait: Duration,
    pub(crate) _release: PhantomData<fn() -> Rel>,
}

impl<K: fmt::Debug, P: fmt::Debug, Rel> fmt::Debug for KeyedBulkheadLayer<K, P, Rel> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadLayer")
            .field("shared", &self.shared)
            .field("extractor", &self.extractor)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl<K: Clone, P: Clone, Rel> Clone for KeyedBulkheadLayer<K, P, Rel> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            extractor: self.extractor.clone(),
            priority: self.priority.clone(),
            max_queue_wait: self.max_queue_wait,
            _release: PhantomData,
        }
    }
}

impl<K, P, Rel> KeyedBulkheadLayer<K, P, Rel> {
    /// A handle on `key`'s bulkhead, if it exists now. `Key` must be the key type of the
    /// layer's extractor; another type gives [`KeyTypeMismatch`] (before the first request
    /// the layer holds no key and cannot tell, so it answers `Ok(None)`).
    ///
    /// While the handle lives the key's bulkhead counts as in use: it is neither evicted at
    /// the cap nor expired.
    pub fn handle_for<Key: Clone + Eq + Hash + Send + Sync + 'static>(
        &self,
        key: &Key,
    ) -> Result<Option<BulkheadHandle>, KeyTypeMismatch> {
        let Some(erased) = self.shared.map.get() else {
            return Ok(None);
        };
        let store = KeyedShared::downcast::<Key>(&**erased)?;
        Ok(store.get(key).map(|admission| BulkheadHandle { admission }))
    }

    /// Keys with a bulkhead now.
    pub fn tracked_keys(&self) -> usize {
        self.shared.map.get().map_or(0, |erased| erased.len())
    }
}

impl<S, K: Clone, P: Clone, Rel> Layer<S> for KeyedBulkheadLayer<K, P, Rel> {
    type Service = KeyedBulkhead<S, K, P, Rel>;
    fn layer(&self, inner: S) -> Self::Service {
        KeyedBulkhead {
            inner,
            layer: self.clone(),
        }
    }
}

/// One bulkhead per key (e.g. per tenant), in shed mode: `poll_ready` is the inner
/// service's, `call` finds the key's bulkhead and takes a slot, queues or refuses. A request
/// whose key cannot be extracted fails with the core `KeyError` (400).
///
/// Per request: one key extraction, one hash-map lookup under one of up to 16 shard locks
/// (palisade-core's [`KeyedStore`]), O(1) whatever the number of keys; a new key allocates
/// its bulkhead once.
///
/// - **At the cap** (`max_keys` keys), a new key evicts the least recently used key whose
///   bulkhead is idle (nothing in flight or queued, no [`BulkheadHandle`] alive). A bulkhead
///   in use is never evicted, so its in-flight count is never lost. If none of the 16 least
///   recently used keys is idle, the request is refused with `BulkheadFull` (503) and a
///   [`RejectReason::TooManyKeys`] event.
/// - **One key type per layer.** If the same layer serves two request types whose keys
///   differ in type, requests with the second key type fail with
///   [`KeyTypeMismatch`] (never a panic).
/// - **Idle keys** (unused for the builder's
///   [`key_idle_timeout`](crate::BulkheadBuilder::key_idle_timeout), default 1 h) are
///   dropped a few per request, so memory follows the active keys.
pub struct KeyedBulkhead<S, K, P, Rel> {
    inner: S,
    layer: KeyedBulkheadLayer<K, P, Rel>,
}

impl<S: fmt::Debug, K: fmt::Debug, P: fmt::Debug, Rel> fmt::Debug for KeyedBulkhead<S, K, P, Rel> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S: Clone, K: Clone, P: Clone, Rel> Clone for KeyedBulkhead<S, K, P, Rel> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, K, P, Rel> KeyedBulkhead<S, K, P, Rel> {
    palisade_core::define_inner_service_accessors!();
}

impl<S, K, P, Rel, R> Service<R> for KeyedBulkhead<S, K, P, Rel>
where
    S: Service<R> + Clone,
    S::Error: Into<BoxError>,
    K: KeyExtractor<R>,
    P: Priority<R>,
    Rel: Release<S::Response>,
{
    type Response = Rel::Output;
    type Error = BoxError;
    type Future = ResponseFuture<S, R, Rel>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let key = match self.layer.extractor.extract(&req) {
            Ok(k) => k,
            Err(e) => return ResponseFuture::rejected(Box::new(e)),
        };
        let lane = self.layer.priority.lane(&req);
        let wait = self.layer.max_queue_wait;
        let admission = match self.layer.shared.get(&key) {
            Ok(a) => a,
            // One layer used with two key types: refuse, never panic.
            Err(mismatch) => return ResponseFuture::rejected(Box::new(mismatch)),
        };
        if let Some(admission) = admission {
            admit(&admission, &mut self.inner, req, lane, wait)
        } else {
            let t = &self.layer.shared.template;
            t.listeners.emit_named(|instance| BulkheadEvent::Rejected {
                instance,
                lane,
                reason: RejectReason::TooManyKeys,
            });
            ResponseFuture::rejected(Box::new(palisade_core::BulkheadFull::new(Some(wait))))
        }
    }
}
