//! The [`Metrics`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use palisade_core::{BoxError, Classifier, RequestParts, ResponseParts};
use tokio::time::Instant;
use tower_service::Service;

use crate::future::{Guard, ResponseFuture};
use crate::route::Routes;

/// Middleware recording RED metrics; see [`MetricsLayer`](crate::MetricsLayer).
///
/// Clones share one route cache.
pub struct Metrics<S, C> {
    inner: S,
    routes: Arc<Routes>,
    classifier: C,
}

impl<S: Clone, C: Clone> Clone for Metrics<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            routes: self.routes.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Metrics<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .field("routes", &self.routes)
            .field("classifier", &self.classifier)
            .finish()
    }
}

impl<S, C> Metrics<S, C> {
    pub(crate) fn new(inner: S, routes: Arc<Routes>, classifier: C) -> Self {
        Self {
            inner,
            routes,
            classifier,
        }
    }
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

#[cfg(feature = "axum")]
fn matched_path<R: RequestParts>(req: &R) -> Option<&str> {
    req.extensions()?
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

#[cfg(not(feature = "axum"))]
fn matched_path<R: RequestParts>(_req: &R) -> Option<&str> {
    None
}

impl<S, C, R> Service<R> for Metrics<S, C>
where
    S: Service<R>,
    S::Response: ResponseParts,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, BoxError>,
    R: RequestParts,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let route = self.routes.get(matched_path(&req));
        route.in_flight.increment(1.0);
        let guard = Guard::new(route, Instant::now());
        ResponseFuture::new(self.inner.call(req), guard, self.classifier.clone())
    }
}
