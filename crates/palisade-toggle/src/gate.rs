//! [`FlagGateLayer`]: serve a route only while a boolean flag is on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::flags::Flags;
use crate::provider::Provider;

/// Gates a service on boolean flag `flag_key`: on → the inner service; off (or missing) →
/// `404 Not Found` with a problem+json body, or a fallback service
/// ([`FlagGateLayer::or_else`]). Uses the request's [`Flags`] (from [`crate::FlagsLayer`])
/// when present, so targeting applies; otherwise evaluates with an empty context.
pub struct FlagGateLayer<F = NotFound> {
    provider: Arc<dyn Provider>,
    flag_key: Arc<str>,
    fallback: F,
}

/// The default fallback of [`FlagGateLayer`]: `404` problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<F: Clone> Clone for FlagGateLayer<F> {
    fn clone(&self) -> Self {
        Self {
            provider: self.provider.clone(),
            flag_key: self.flag_key.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<F: fmt::Debug> fmt::Debug for FlagGateLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagGateLayer")
            .field("flag_key", &self.flag_key)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl FlagGateLayer {
    /// Gates on `flag_key` from `provider`; answers 404 when off.
    pub fn new(provider: impl Provider, flag_key: impl Into<Arc<str>>) -> Self {
        Self {
            provider: Arc::new(provider),
            flag_key: flag_key.into(),
            fallback: NotFound,
        }
    }

    /// Routes to `fallback` instead of answering 404 when the flag is off.
    #[must_use]
    pub fn or_else<F>(self, fallback: F) -> FlagGateLayer<Fallback<F>> {
        FlagGateLayer {
            provider: self.provider,
            flag_key: self.flag_key,
            fallback: Fallback(fallback),
        }
    }
}

/// A fallback service for [`FlagGateLayer::or_else`].
#[derive(Debug, Clone)]
pub struct Fallback<F>(F);

impl<S, F: Clone> Layer<S> for FlagGateLayer<F> {
    type Service = FlagGate<S, F>;
    fn layer(&self, inner: S) -> Self::Service {
        FlagGate {
            inner,
            fallback: self.fallback.clone(),
            provider: self.provider.clone(),
            flag_key: self.flag_key.clone(),
        }
    }
}

/// The service of [`FlagGateLayer`].
pub struct FlagGate<S, F = NotFound> {
    inner: S,
    fallback: F,
    provider: Arc<dyn Provider>,
    flag_key: Arc<str>,
}

impl<S: Clone, F: Clone> Clone for FlagGate<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            fallback: self.fallback.clone(),
            provider: self.provider.clone(),
            flag_key: self.flag_key.clone(),
        }
    }
}

impl<S: fmt::Debug, F: fmt::Debug> fmt::Debug for FlagGate<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagGate")
            .field("inner", &self.inner)
            .field("fallback", &self.fallback)
            .field("flag_key", &self.flag_key)
            .finish_non_exhaustive()
    }
}

impl<S, F> FlagGate<S, F> {
    palisade_core::define_inner_service_accessors!();

    fn is_on<B>(&self, req: &Request<B>) -> bool {
        match req.extensions().get::<Flags>() {
            Some(flags) => flags.is_enabled(&self.flag_key),
            None => Flags::without_context(&*self.provider).is_enabled(&self.flag_key),
        }
    }
}

fn not_found<ResBody: From<Bytes>>(flag_key: &str) -> Response<ResBody> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": format!("feature `{flag_key}` is not enabled"),
    });
    let mut res = Response::new(ResBody::from(Bytes::from(body.to_string())));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(palisade_core::response::PROBLEM_JSON),
    );
    res
}

impl<S, B, ResBody> Service<Request<B>> for FlagGate<S, NotFound>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GateFuture<S::Future, std::future::Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.is_on(&req) {
            GateFuture::on(self.inner.call(req))
        } else {
            GateFuture::off(std::future::ready(Ok(not_found(&self.flag_key))))
        }
    }
}

impl<S, F, B> Service<Request<B>> for FlagGate<S, Fallback<F>>
where
    S: Service<Request<B>>,
    F: Service<Request<B>, Response = S::Response, Error = S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GateFuture<S::Future, F::Future>;

    /// Both the inner and the fallback service must be ready.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx)? {
            Poll::Ready(()) => self.fallback.0.poll_ready(cx),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.is_on(&req) {
            GateFuture::on(self.inner.call(req))
        } else {
            GateFuture::off(self.fallback.0.call(req))
        }
    }
}

pin_project! {
    /// The future of [`FlagGate`].
    #[derive(Debug)]
    pub struct GateFuture<A, B> {
        #[pin]
        kind: Kind<A, B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<A, B> {
        On { #[pin] fut: A },
        Off { #[pin] fut: B },
    }
}

impl<A, B> GateFuture<A, B> {
    fn on(fut: A) -> Self {
        Self {
            kind: Kind::On { fut },
        }
    }
    fn off(fut: B) -> Self {
        Self {
            kind: Kind::Off { fut },
        }
    }
}

impl<A, B, T> Future for GateFuture<A, B>
where
    A: Future<Output = T>,
    B: Future<Output = T>,
{
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project().kind.project() {
            KindProj::On { fut } => fut.poll(cx),
            KindProj::Off { fut } => fut.poll(cx),
        }
    }
}
