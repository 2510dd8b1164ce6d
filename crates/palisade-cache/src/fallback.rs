//! [`FallbackLayer`]: answer from a fallback when the inner service fails in a chosen way.
//!
//! Triggers ([`FallbackLayer::on_any_error`], [`on_rejection`](FallbackLayer::on_rejection)
//! with a Palisade rejection kind such as `"circuit_open"`, `"timeout"` or
//! `"bulkhead_full"`, [`on_server_errors`](FallbackLayer::on_server_errors) for 5xx
//! responses) select the outcomes; the fallback is a closure of the [`FallbackReason`]
//! returning a response (a static one with [`FallbackLayer::fixed`]). Each fallback emits a
//! [`FallbackEvent`] with the reason. For the cache's stale copy as fallback, use
//! `stale-if-error` on [`CacheLayer`](crate::CacheLayer), which already answers errors and
//! rejections from inside with the stored response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Response, StatusCode};
use palisade_core::rejection::find_rejection;
use palisade_core::{BoxError, Event, Listeners};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::CacheBody;

/// Why the fallback answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FallbackReason {
    /// The inner service returned an error; `kind` is the Palisade rejection kind, if any.
    Error {
        /// Rejection kind (`"circuit_open"`, `"timeout"`, …) or `None` for other errors.
        kind: Option<&'static str>,
        /// The error's message.
        message: String,
    },
    /// The inner service answered with this status.
    Status(StatusCode),
}

/// Emitted each time the fallback answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackEvent {
    /// The fallback layer's name.
    pub instance: palisade_core::InstanceName,
    /// Why.
    pub reason: FallbackReason,
}

impl Event for FallbackEvent {
    fn layer(&self) -> &'static str {
        "fallback"
    }
    fn name(&self) -> &'static str {
        "fallback"
    }
    fn instance(&self) -> &str {
        &self.instance
    }
    /// The rejection kind that triggered it (`circuit_open`, …), `error` or `status`.
    fn reason(&self) -> Option<&'static str> {
        match &self.reason {
            FallbackReason::Error { kind: Some(k), .. } => Some(k),
            FallbackReason::Error { kind: None, .. } => Some("error"),
            FallbackReason::Status(_) => Some("status"),
        }
    }
}

type FallbackFn = dyn Fn(&FallbackReason) -> Response<Bytes> + Send + Sync;

#[derive(Clone)]
struct Settings {
    any_error: bool,
    kinds: Vec<&'static str>,
    server_errors: bool,
    fallback: Arc<FallbackFn>,
    listeners: Listeners<FallbackEvent>,
}

/// Answers chosen failures of the inner service from a fallback; see the
/// [module docs](self).
#[derive(Clone)]
pub struct FallbackLayer {
    settings: Arc<Settings>,
}

impl fmt::Debug for FallbackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("any_error", &self.settings.any_error)
            .field("kinds", &self.settings.kinds)
            .field("server_errors", &self.settings.server_errors)
            .finish_non_exhaustive()
    }
}

impl FallbackLayer {
    /// A fallback computed from the reason. No trigger is set yet.
    pub fn new(
        fallback: impl Fn(&FallbackReason) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        Self {
            settings: Arc::new(Settings {
                any_error: false,
                kinds: Vec::new(),
                server_errors: false,
                fallback: Arc::new(fallback),
                listeners: Listeners::new().named("fallback"),
            }),
        }
    }

    /// A fixed response (status and body; the `Bytes` is shared, not copied).
    pub fn fixed(status: StatusCode, body: Bytes) -> Self {
        Self::new(move |_| {
            let mut res = Response::new(body.clone());
            *res.status_mut() = status;
            res
        })
    }

    fn edit(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        // Copy-on-write: configuring a layer that was already cloned leaves the clones as
        // they were instead of panicking.
        let s = Arc::make_mut(&mut self.settings);
        f(s);
        self
    }

    /// Triggers on every error.
    #[must_use]
    pub fn on_any_error(self) -> Self {
        self.edit(|s| s.any_error = true)
    }

    /// Triggers on errors carrying the Palisade rejection of this kind (`"circuit_open"`,
    /// `"timeout"`, `"bulkhead_full"`, `"rate_limited"`, …).
    #[must_use]
    pub fn on_rejection(self, kind: &'static str) -> Self {
        self.edit(|s| s.kinds.push(kind))
    }

    /// Triggers on 5xx responses.
    #[must_use]
    pub fn on_server_errors(self) -> Self {
        self.edit(|s| s.server_errors = true)
    }

    /// Listeners for [`FallbackEvent`]s.
    #[must_use]
    pub fn listeners(self, listeners: Listeners<FallbackEvent>) -> Self {
        self.edit(|s| s.listeners = listeners)
    }
}

impl<S> Layer<S> for FallbackLayer {
    type Service = Fallback<S>;

    fn layer(&self, inner: S) -> Fallback<S> {
        Fallback {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The fallback service; built by [`FallbackLayer`].
#[derive(Clone)]
pub struct Fallback<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: fmt::Debug> fmt::Debug for Fallback<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Fallback<S> {
    palisade_core::define_inner_service_accessors!();
}

impl<S, Req, B> Service<Req> for Fallback<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<CacheBody<B>>;
    type Error = BoxError;
    type Future = FallbackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        FallbackFuture {
            inner: self.inner.call(req),
            settings: self.settings.clone(),
        }
    }
}

pin_project! {
    /// Response future of [`Fallback`].
    pub struct FallbackFuture<F> {
        #[pin]
        inner: F,
        settings: Arc<Settings>,
    }
}

impl<F> fmt::Debug for FallbackFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackFuture").finish_non_exhaustive()
    }
}

fn answer<B>(s: &Settings, reason: FallbackReason) -> Response<CacheBody<B>> {
    let res = (s.fallback)(&reason);
    s.listeners
        .emit_named(|instance| FallbackEvent { instance, reason });
    res.map(CacheBody::full)
}

impl<F, B, E> Future for FallbackFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<CacheBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let s = &**this.settings;
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(res) if s.server_errors && res.status().is_server_error() => {
                Ok(answer(s, FallbackReason::Status(res.status())))
            }
            Ok(res) => Ok(res.map(CacheBody::inner)),
            Err(e) => {
                let e: BoxError = e.into();
                let kind = find_rejection(&*e).map(palisade_core::Rejection::kind);
                if s.any_error || kind.is_some_and(|k| s.kinds.contains(&k)) {
                    Ok(answer(
                        s,
                        FallbackReason::Error {
                            kind,
                            message: e.to_string(),
                        },
                    ))
                } else {
                    Err(e)
                }
            }
        })
    }
}
