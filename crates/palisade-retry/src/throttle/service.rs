//! The [`AdaptiveThrottle`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use palisade_core::classify::Classifier;
use palisade_core::{BoxError, Throttled};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{Shared, ThrottleStats, probability, stats};
use crate::events::ThrottleEvent;

/// Sheds requests locally while the upstream rejects most of them; built by
/// [`AdaptiveThrottleLayer`](super::AdaptiveThrottleLayer).
///
/// Works for any request type (`http::Request<B>` for hyper-util's client,
/// `reqwest::Request` for `reqwest::Client`): it reads only the response, through the
/// classifier. Clones share one window. `poll_ready` is the inner service's; a request shed
/// in `call` leaves that readiness unused, as tower's `LoadShed` does.
pub struct AdaptiveThrottle<S, C> {
    inner: S,
    shared: Arc<Shared<C>>,
}

impl<S: Clone, C> Clone for AdaptiveThrottle<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for AdaptiveThrottle<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("inner", &self.inner)
            .field("k", &self.shared.k)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<S, C> AdaptiveThrottle<S, C> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<C>>) -> Self {
        Self { inner, shared }
    }

    /// The window's counts now (shared with every service of the same layer).
    pub fn stats(&self) -> ThrottleStats {
        stats(
            &self.shared.state,
            self.shared.k,
            self.shared.max_probability,
        )
    }

    palisade_core::define_inner_service_accessors!();
}

impl<S, Req, C> Service<Req> for AdaptiveThrottle<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        let window = &shared.state.window;
        let bucket = window.bucket();
        let (requests, accepts) = window.counts_at(bucket);
        // Every request counts, the ones shed below included (SRE book: "requests").
        window.request(bucket);
        let p = probability(shared.k, shared.max_probability, requests, accepts);
        if p > 0.0 && shared.state.draw() < p {
            shared
                .listeners
                .emit_named(|instance| ThrottleEvent::Throttled {
                    instance,
                    probability: p,
                    requests: requests + 1,
                    accepts,
                });
            return ResponseFuture::rejected(Throttled::new(p));
        }
        ResponseFuture::called(self.inner.call(req), self.shared.clone())
    }
}
