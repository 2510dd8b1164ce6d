use std::sync::Arc;
use std::task::{Context, Poll};

use palisade_core::{BoxError, Classifier};
use tokio::time::Instant;
use tower_service::Service;

use crate::future::{Guard, ResponseFuture};
use crate::handle::BreakerHandle;
use crate::shared::Breaker;

/// Middleware that stops calling a failing service for a while, then probes it.
///
/// Rejections are [`CircuitOpen`](palisade_core::CircuitOpen) with the remaining OPEN time,
/// rendered by `HandleRejections` as 503 + `Retry-After` / gRPC UNAVAILABLE. `poll_ready`
/// only forwards the inner service's readiness: an open breaker never blocks it, it rejects
/// in `call`. Clones share one breaker. Outcomes are recorded when the response future
/// completes; a future dropped before that frees its half-open probe slot and counts as
/// nothing.
#[derive(Debug)]
pub struct CircuitBreaker<S, C> {
    inner: S,
    breaker: Arc<Breaker>,
    classifier: C,
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, breaker: Arc<Breaker>, classifier: C) -> Self {
        Self {
            inner,
            breaker,
            classifier,
        }
    }
    /// A handle on the shared breaker.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            breaker: self.breaker.clone(),
        }
    }
    palisade_core::define_inner_service_accessors!();
}

impl<S, C, R> Service<R> for CircuitBreaker<S, C>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: R) -> Self::Future {
        match self.breaker.acquire() {
            Ok(permit) => ResponseFuture::called(
                self.inner.call(req),
                Guard::new(self.breaker.clone(), permit, Instant::now()),
                self.classifier.clone(),
            ),
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}
