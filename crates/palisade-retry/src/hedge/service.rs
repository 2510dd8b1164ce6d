//! The [`Hedge`] service: sends the first copy and plans the hedges.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use palisade_core::BoxError;
use tokio::time::Instant;
use tower_service::Service;

use super::future::HedgeFuture;
use super::layer::{HedgeDelay, HedgeShared};
use crate::head::HeadCopy;
use crate::policy::{Predicate, is_safe};

/// Hedging service; built by [`HedgeLayer`](super::HedgeLayer). Clones share one state.
pub struct Hedge<S, P> {
    inner: S,
    shared: Arc<HedgeShared<P>>,
}

impl<S: Clone, P> Clone for Hedge<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Hedge<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("delay", &self.shared.delay)
            .finish_non_exhaustive()
    }
}

impl<S, P> Hedge<S, P> {
    pub(super) fn from_shared(inner: S, shared: Arc<HedgeShared<P>>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Consumes the service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, P> Service<Request<B>> for Hedge<S, P>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Clone,
    P: Predicate<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = HedgeFuture<S, B, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        if let Some(b) = &shared.budget {
            b.deposit();
        }
        let hedgeable = shared.max_hedged > 0 && (shared.hedge_unsafe || is_safe(req.method()));
        if !hedgeable {
            let first = self.inner.call(req);
            return HedgeFuture::alone(first, shared, None);
        }
        let (delay, started) = match &shared.delay {
            HedgeDelay::Fixed(d) => (Some(*d), None),
            HedgeDelay::Learned(h) => {
                let now = Instant::now();
                (h.delay(now), Some(now))
            }
        };
        let Some(delay) = delay else {
            // Too few latencies learned: sent alone, and timed to learn from.
            let first = self.inner.call(req);
            return HedgeFuture::alone(first, shared, started);
        };
        // The head is copied into a reused buffer, rebuilt only if a hedge is sent.
        let template = HeadCopy::of(&req).map(|head| (head, req.body().clone()));
        let first = self.inner.call(req);
        let svc = template.as_ref().map(|_| self.inner.clone());
        HedgeFuture::hedged(first, delay, svc, template, shared, started)
    }
}
