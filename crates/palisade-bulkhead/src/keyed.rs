//! Per-key bulkheads: one bulkhead per tenant (or any key), bounded key count.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_core::{BoxError, KeyExtractor, Listeners};
use tower_layer::Layer;
use tower_service::Service;

use crate::admission::{Adaptive, Admission};
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

type KeyMap<Key> = Mutex<HashMap<Key, Arc<Admission>>>;

/// State shared by a keyed layer, its services and their clones.
pub(crate) struct KeyedShared {
    template: Template,
    max_keys: usize,
    /// A `KeyMap<Key>` for the extractor's key type, made on first use (the key type is
    /// only known once the request type is).
    map: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for KeyedShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedShared")
            .field("template", &self.template)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl KeyedShared {
    pub(crate) fn new(template: Template, max_keys: usize) -> Self {
        Self {
            template,
            max_keys,
            map: OnceLock::new(),
        }
    }

    fn map<Key: Eq + Hash + Send + Sync + 'static>(&self) -> &KeyMap<Key> {
        self.map
            .get_or_init(|| Box::new(KeyMap::<Key>::default()))
            .downcast_ref()
            .expect("one keyed bulkhead layer is used with one key type")
    }

    /// The bulkhead of `key`, made if new; `None` when `max_keys` busy keys exist.
    fn get<Key: Clone + Eq + Hash + Send + Sync + 'static>(
        &self,
        key: &Key,
    ) -> Option<Arc<Admission>> {
        let mut map = self
            .map::<Key>()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(a) = map.get(key) {
            return Some(a.clone());
        }
        if map.len() >= self.max_keys {
            // Only the map holds an idle bulkhead (permits and queued waiters hold clones).
            map.retain(|_, a| Arc::strong_count(a) > 1);
            if map.len() >= self.max_keys {
                return None;
            }
        }
        let t = &self.template;
        let a = Arc::new(Admission::new(
            t.limit,
            t.max_queue,
            t.reserve.clone(),
            t.adaptive,
            t.listeners.clone(),
        ));
        map.insert(key.clone(), a.clone());
        Some(a)
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
    /// A handle on `key`'s bulkhead, if it exists now.
    pub fn handle_for<Key: Eq + Hash + Send + Sync + 'static>(
        &self,
        key: &Key,
    ) -> Option<BulkheadHandle> {
        let map = self
            .shared
            .map::<Key>()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(key).map(|a| BulkheadHandle {
            admission: a.clone(),
        })
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
/// Per request: one key extraction, one hash-map lookup under a short lock; a new key
/// allocates its bulkhead once.
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
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
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
        if let Some(admission) = self.layer.shared.get(&key) {
            admit(&admission, &mut self.inner, req, lane, wait)
        } else {
            let t = &self.layer.shared.template;
            t.listeners.emit_with(|| BulkheadEvent::Rejected {
                lane,
                reason: RejectReason::TooManyKeys,
            });
            ResponseFuture::rejected(Box::new(palisade_core::BulkheadFull::new(Some(wait))))
        }
    }
}
