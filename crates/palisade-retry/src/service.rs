use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use palisade_core::{BoxError, Deadline};
use tower_service::Service;

use crate::body::RetryBody;
use crate::future::{ResponseFuture, Template};
use crate::layer::Settings;
use crate::policy::retry_safe;

/// Middleware that retries failed HTTP/gRPC calls, safely by default.
///
/// - Only requests safe to repeat are retried: idempotent methods, or any method with an
///   `Idempotency-Key` (POST/PATCH only when opted in). Others pass straight through, their
///   body streamed, untouched.
/// - Retried on: transport errors and per-attempt timeouts, 502/503/504 and 429 (honouring
///   `Retry-After`), gRPC UNAVAILABLE (honouring `grpc-retry-pushback-ms`).
/// - Request bodies up to the limit are buffered once and replayed byte for byte.
/// - Never sleeps past the request's [`Deadline`]; draws from a shared budget.
///
/// Each retry calls a clone of the readied inner service (tower's rule for clones).
#[derive(Debug)]
pub struct Retry<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S> Retry<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }
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

impl<S, B, ResB> Service<Request<B>> for Retry<S>
where
    S: Service<Request<RetryBody<B>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let s = &self.settings;
        if s.max_attempts <= 1 || !retry_safe(req.method(), req.headers(), s.unsafe_methods) {
            // Not retryable: no clone, no buffering, the body streams through.
            return ResponseFuture::once(self.inner.call(req.map(|b| RetryBody::stream(None, b))));
        }
        if let Some(b) = &s.budget {
            b.on_request();
        }
        let deadline = Deadline::from_request(&req);
        // Keep the readied service for the first attempt; retries use it again after
        // `poll_ready`.
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        if body.is_end_stream() {
            let template = Template::new(parts, bytes::Bytes::new());
            ResponseFuture::start(svc, template, s.clone(), deadline)
        } else {
            ResponseFuture::buffer(svc, parts, body, s.clone(), deadline)
        }
    }
}
