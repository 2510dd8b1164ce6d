//! The [`Retry`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::Body;
use palisade_core::{BoxError, Deadline};
use tower_service::Service;

use crate::body::RetryBody;
use crate::events::RetryEvent;
use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::policy::{IDEMPOTENCY_KEY, Predicate, is_idempotent};

/// Retries failed requests; built by [`RetryLayer`](crate::RetryLayer).
///
/// Clones share one state (budget, RNG, listeners). The first attempt is sent by the
/// readied inner service; retries use a clone, made ready again before each call (tower's
/// "be careful when cloning inner services").
pub struct Retry<S, P> {
    inner: S,
    shared: Arc<Shared<P>>,
}

impl<S: Clone, P> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Retry<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("max_attempts", &self.shared.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<S, P> Retry<S, P> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<P>>) -> Self {
        Self { inner, shared }
    }

    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn shared(&self) -> &Arc<Shared<P>> {
        &self.shared
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

impl<S, B, P> Service<Request<B>> for Retry<S, P>
where
    S: Service<Request<RetryBody<B>>> + Clone,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    P: Predicate<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        if let Some(b) = &shared.budget {
            b.deposit();
        }
        let mut retryable = shared.max_attempts > 1
            && (shared.retry_unsafe
                || is_idempotent(req.method())
                || req.headers().contains_key(IDEMPOTENCY_KEY));
        if retryable && req.body().size_hint().lower() > shared.body_limit as u64 {
            let limit = shared.body_limit;
            shared
                .listeners
                .emit_named(|instance| RetryEvent::BodyTooLarge { instance, limit });
            retryable = false;
        }
        if !retryable {
            // Not retryable: pass the body through untouched, never buffer.
            let fut = self.inner.call(req.map(RetryBody::original));
            return ResponseFuture::single(fut, shared);
        }
        let deadline = Deadline::from_request(&req);
        ResponseFuture::retrying(&mut self.inner, req, deadline, shared)
    }
}
