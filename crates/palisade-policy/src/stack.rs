//! One route's service stack, in the canonical order.

use std::convert::Infallible;

use axum_core::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use palisade_bulkhead::BulkheadBody;
use palisade_cache::CacheBody;
use palisade_chaos::FaultBody;
use palisade_core::{BoxError, HandleRejectionsLayer};
use palisade_idempotency::body::{RequestBody, ResponseBody};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::build::ServerLayers;

/// A built route stack over the inner service: infallible, answering with axum's [`Body`].
pub type RouteStack = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The response future of a dispatched request: one allocation holding the route stack's
/// clone and its call, the same single boxed future a hand-built boxed stack costs.
pub(crate) type StackFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// A route stack as the dispatcher holds it: shared by reference, called through a clone
/// that lives inside the response future (no boxed clone per request).
pub(crate) trait SharedStack: Send + Sync {
    fn oneshot(&self, req: Request<Body>) -> StackFuture;
}

impl<T> SharedStack for T
where
    T: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    T::Future: Send + 'static,
{
    fn oneshot(&self, req: Request<Body>) -> StackFuture {
        let mut svc = self.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
            svc.call(req).await
        })
    }
}

impl ServerLayers {
    /// Wraps `inner` in this route's layers, outermost first:
    /// rejections → rate limit → flag gate → cache → timeout → idempotency → breaker →
    /// bulkhead → fault → inner.
    /// Absent layers are not there at all (an `Either` arm straight to the next one).
    pub(crate) fn stack<S, ResB>(&self, inner: S) -> RouteStack
    where
        S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        BoxCloneSyncService::new(self.typed(inner))
    }

    /// The same stack, shared for dispatch (see [`SharedStack`]).
    pub(crate) fn shared<S, ResB>(&self, inner: S) -> std::sync::Arc<dyn SharedStack>
    where
        S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        std::sync::Arc::new(self.typed(inner))
    }

    fn typed<S, ResB>(
        &self,
        inner: S,
    ) -> impl Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
    where
        S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let base = ServiceBuilder::new()
            .map_err(Into::<BoxError>::into)
            .map_response(|r: Response<ResB>| r.map(Body::new))
            .service(inner);
        // Layers that wrap bodies are brought back to `Body`, so both arms of an optional
        // layer have one type.
        let bulkhead = self.bulkhead.clone().map(|l| {
            ServiceBuilder::new()
                .map_response(|r: Response<BulkheadBody<Body>>| r.map(Body::new))
                .layer(l)
                .into_inner()
        });
        let cache = self.cache.clone().map(|l| {
            ServiceBuilder::new()
                .map_response(|r: Response<CacheBody<Body>>| r.map(Body::new))
                .layer(l)
                .into_inner()
        });
        let fault = self.fault.clone().map(|l| {
            ServiceBuilder::new()
                .map_response(|r: Response<FaultBody<Body>>| r.map(Body::new))
                .layer(l)
                .into_inner()
        });
        let idempotency = self.idempotency.clone().map(|l| {
            ServiceBuilder::new()
                .map_response(|r: Response<ResponseBody<Body>>| r.map(Body::new))
                .layer(l)
                .map_request(|r: Request<RequestBody<Body>>| r.map(Body::new))
                .into_inner()
        });
        ServiceBuilder::new()
            .map_response(|r: Response<palisade_core::RejectionBody<Body>>| r.map(Body::new))
            .layer(HandleRejectionsLayer::new())
            .option_layer(self.rate_limit.clone())
            .option_layer(self.gate.clone())
            .option_layer(cache)
            .option_layer(self.timeout.clone())
            .option_layer(idempotency)
            .option_layer(self.breaker.clone())
            .option_layer(bulkhead)
            .option_layer(fault)
            .service(base)
    }
}
