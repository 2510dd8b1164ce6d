//! [`Cache`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use palisade_core::BoxError;
use tower_service::Service;

use crate::body::CacheBody;
use crate::future::ResponseFuture;
use crate::key;
use crate::layer::Settings;
use crate::memory::MemoryStore;
use crate::policy::{self, Lookup};
use crate::store::CacheStore;

mod upstream;
use upstream::{invalidate, miss, refresh, revalidate};

/// A shared HTTP cache in front of `S`; built by [`CacheLayer`](crate::CacheLayer).
/// Clones share the store and settings.
pub struct Cache<S, St = MemoryStore> {
    inner: S,
    settings: Arc<Settings<St>>,
}

impl<S: Clone, St> Clone for Cache<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S: fmt::Debug, St: fmt::Debug> fmt::Debug for Cache<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .field("store", &self.settings.store)
            .finish_non_exhaustive()
    }
}

impl<S, St> Cache<S, St> {
    pub(crate) fn from_settings(inner: S, settings: Arc<Settings<St>>) -> Self {
        Self { inner, settings }
    }

    /// The store (clones share it).
    pub fn store(&self) -> &St {
        &self.settings.store
    }

    /// Misses waiting on an upstream call now (distinct keys; 0 when coalescing is off).
    pub fn misses_in_flight(&self) -> usize {
        self.settings.flights.as_ref().map_or(0, |f| f.len())
    }

    palisade_core::define_inner_service_accessors!();
}

/// The store's bytes in use and bound (a store without its own accounting reads 0), named
/// by the layer's instance name, for a metrics exporter (`palisade_metrics::watch_usage`).
impl<S: Send + Sync + 'static, St: CacheStore> palisade_core::event::UsageGauge for Cache<S, St> {
    fn used(&self) -> u64 {
        self.settings.store.bytes_in_use().unwrap_or(0)
    }
    fn capacity(&self) -> Option<u64> {
        self.settings.store.max_bytes()
    }
    fn instance(&self) -> palisade_core::InstanceName {
        self.settings.listeners.instance().clone()
    }
}

type Res<B> = Response<CacheBody<B>>;

impl<S, St, ReqB, ResB> Service<Request<ReqB>> for Cache<S, St>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: CacheStore,
    ReqB: Default + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Res<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let s = &self.settings;
        let mut prefetched = None;
        let mut hash = 0;
        if policy::is_get_or_head(req.method()) {
            let fields = policy::RequestFields::of(req.headers());
            hash = key::hash_with_host(req.uri(), fields.host, req.headers(), &s.key_headers);
            if let Some(found) = s.store.get_now(hash) {
                let now = s.clock.now();
                match policy::lookup_with(
                    s,
                    fields,
                    req.method(),
                    req.uri(),
                    req.headers(),
                    found.as_deref(),
                    now,
                ) {
                    Lookup::Serve(res) => return ResponseFuture::ready(Ok(res)),
                    Lookup::ServeAndRefresh(res, stored) => {
                        refresh(&self.settings, self.inner.clone(), &req, hash, stored);
                        return ResponseFuture::ready(Ok(res));
                    }
                    other => prefetched = Some(other),
                }
            }
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(handle(
            self.settings.clone(),
            inner,
            req,
            hash,
            prefetched,
        )))
    }
}

async fn handle<S, St, ReqB, ResB>(
    s: Arc<Settings<St>>,
    mut inner: S,
    req: Request<ReqB>,
    hash: u64,
    prefetched: Option<Lookup<ResB>>,
) -> Result<Res<ResB>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Default + Send + 'static,
    St: CacheStore,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    if !policy::is_get_or_head(req.method()) {
        if !policy::is_unsafe(req.method()) {
            return inner.call(req).await.map(|r| r.map(CacheBody::inner));
        }
        let (uri, headers) = (req.uri().clone(), req.headers().clone());
        let res = inner.call(req).await?;
        if res.status().is_success() || res.status().is_redirection() {
            invalidate(&s, &uri, &headers, res.headers()).await;
        }
        return Ok(res.map(CacheBody::inner));
    }
    let lookup = if let Some(l) = prefetched {
        l
    } else {
        let found = s.store.get(hash).await;
        policy::lookup(
            &s,
            req.method(),
            req.uri(),
            req.headers(),
            found.as_deref(),
            s.clock.now(),
        )
    };
    match lookup {
        Lookup::Serve(res) => Ok(res),
        Lookup::ServeAndRefresh(res, stored) => {
            refresh(&s, inner, &req, hash, stored);
            Ok(res)
        }
        Lookup::Validate(stored) => revalidate(&s, inner, req, hash, stored).await,
        Lookup::Miss => miss(&s, inner, req, hash).await,
    }
}
