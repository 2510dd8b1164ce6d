//! [`PolicyLayer`] and [`PolicyService`]: route each request to its route's stack.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use axum_core::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use palisade_core::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::build::ServerLayers;
use crate::reload::{PolicyHandle, Rebuild, bury};
use crate::set::PolicySet;
use crate::stack::{SharedStack, StackFuture};

/// Applies a [`PolicyHandle`]'s per-route stacks to any `http` service: each request goes
/// through the stack of the first route whose `match` holds, or the fallback's, and then to
/// the inner service. Follows reloads.
///
/// For tonic, match on the gRPC method path (`path = "/pkg.Service/Method"`).
#[derive(Debug, Clone)]
pub struct PolicyLayer {
    handle: PolicyHandle,
}

impl PolicyLayer {
    /// A layer over the live set of `handle`.
    pub fn new(handle: PolicyHandle) -> Self {
        Self { handle }
    }
}

/// The service of [`PolicyLayer`]. Clones share the stacks (and with them every layer's state).
pub struct PolicyService<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for PolicyService<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for PolicyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyService")
            .field("routes", &self.shared.stacks.load().stacks.len())
            .finish_non_exhaustive()
    }
}

struct Shared<S> {
    inner: S,
    stacks: ArcSwap<Stacks>,
}

struct Stacks {
    set: Arc<PolicySet>,
    stacks: Vec<Arc<dyn SharedStack>>,
}

impl<S, ResB> Shared<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn build(&self, set: &Arc<PolicySet>, old: Option<&Stacks>) -> Stacks {
        // A route whose layers were carried over keeps its built stack as well.
        let kept: HashMap<*const ServerLayers, &Arc<dyn SharedStack>> = old
            .map(|o| {
                o.set
                    .routes
                    .iter()
                    .map(|p| Arc::as_ptr(&p.layers))
                    .zip(&o.stacks)
                    .collect()
            })
            .unwrap_or_default();
        let stacks = set
            .routes
            .iter()
            .map(|r| match kept.get(&Arc::as_ptr(&r.layers)) {
                Some(s) => Arc::clone(s),
                None => r.layers.shared(self.inner.clone()),
            })
            .collect();
        Stacks {
            set: Arc::clone(set),
            stacks,
        }
    }
}

impl<S, ResB> Rebuild for Shared<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn rebuild(&self, set: &Arc<PolicySet>) {
        let old = self.stacks.load_full();
        let new = Arc::new(self.build(set, Some(&old)));
        bury((old, self.stacks.swap(new)));
    }
}

impl<S, ResB> Layer<S> for PolicyLayer
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> PolicyService<S> {
        let set = self.handle.current();
        let shared = Arc::new(Shared {
            inner,
            stacks: ArcSwap::from_pointee(Stacks {
                set: Arc::clone(&set),
                stacks: Vec::new(),
            }),
        });
        shared.stacks.store(Arc::new(shared.build(&set, None)));
        let weak: std::sync::Weak<dyn Rebuild> =
            Arc::downgrade(&(Arc::clone(&shared) as Arc<dyn Rebuild>));
        self.handle.register(weak);
        // A reload between `current()` and `register` would be missed: catch up.
        if !Arc::ptr_eq(&self.handle.current(), &set) {
            shared.rebuild(&self.handle.current());
        }
        PolicyService { shared }
    }
}

/// The response future of [`PolicyService`]: the chosen route's stack, driven to readiness
/// and called. One allocation per request, holding the stack's clone and its call.
pub struct ResponseFuture {
    inner: StackFuture,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl std::future::Future for ResponseFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, B> Service<Request<B>> for PolicyService<S>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: each route's stack is driven to readiness inside the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let stacks = self.shared.stacks.load();
        let i = stacks.set.route_for(req.method(), req.uri(), req.headers());
        ResponseFuture {
            inner: stacks.stacks[i].oneshot(req.map(Body::new)),
        }
    }
}
