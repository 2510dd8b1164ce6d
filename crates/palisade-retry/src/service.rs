//! The [`Retry`] service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::Body;
use palisade_core::request::Http;
use palisade_core::{BoxError, Deadline, RequestParts};
use tower_service::Service;

use crate::body::ReplayBody;
use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::policy::Predicate;

/// Retries failed requests; built by [`RetryLayer`](crate::RetryLayer).
///
/// Clones share one state (budget, RNG, listeners). The first attempt is sent by the
/// readied inner service; retries use a clone, made ready again before each call (tower's
/// "be careful when cloning inner services").
///
/// In mode [`Http`] (the default) it takes `http::Request`s (and `reqwest::Request`s with
/// the `reqwest` feature); in mode [`AnyRequest`](palisade_core::AnyRequest) (built by
/// [`RetryLayer::any_request`](crate::RetryLayer::any_request)) any request type that is
/// [`ReplayRequest`](crate::ReplayRequest).
pub struct Retry<S, P, M = Http> {
    inner: S,
    shared: Arc<Shared<P>>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, P, M> Clone for Retry<S, P, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, P, M> fmt::Debug for Retry<S, P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("max_attempts", &self.shared.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<S, P, M> Retry<S, P, M> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<P>>) -> Self {
        Self {
            inner,
            shared,
            mode: PhantomData,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<P>> {
        &self.shared
    }

    palisade_core::define_inner_service_accessors!();
}

impl<S, B, P> Service<Request<B>> for Retry<S, P>
where
    S: Service<Request<ReplayBody<B>>> + Clone,
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
        let body_len = req.body().size_hint().lower();
        let host = shared.host_budget(RequestParts::authority(&req));
        if !shared.admit(req.method(), req.headers(), body_len, host.as_deref()) {
            // Not retryable: pass the body through untouched, never buffer.
            let fut = self.inner.call(req.map(ReplayBody::original));
            return ResponseFuture::single(fut, shared).with_host_budget(host);
        }
        let deadline = Deadline::from_request(&req);
        ResponseFuture::retrying(&mut self.inner, req, deadline, shared).with_host_budget(host)
    }
}
