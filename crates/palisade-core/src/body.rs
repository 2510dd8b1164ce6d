//! [`ReplayBody`]: the request body that a layer which reads bodies (retry, idempotency,
//! traffic shadowing) hands to its inner service — the original body untouched, a copy held
//! in memory (cheap to send again), or, past a size limit, what was read followed by the
//! rest of the original. [`ReadBody`] reads a body into one, up to a limit.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Empty};
//! use palisade_core::body::ReplayBody;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let copy = Bytes::from_static(b"hello");
//! // One buffered copy, sent twice: each send clones the `Bytes` (a reference count).
//! for _ in 0..2 {
//!     let body = ReplayBody::<Empty<Bytes>>::buffered(copy.clone());
//!     assert!(body.is_buffered());
//!     assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
//! }
//! # }
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

mod read;

pub use self::read::{Read, ReadBody};

pin_project! {
    /// A body passed through, held in memory, or partly read then continued; see the
    /// [module docs](self).
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Original { #[pin] body: B },
        Buffered {
            data: Option<Bytes>,
            // Boxed: trailers are rare, and an inline `HeaderMap` would triple the body's size.
            trailers: Option<Box<HeaderMap>>,
        },
        Prefixed { prefix: Option<Bytes>, #[pin] rest: B },
    }
}

impl<B> ReplayBody<B> {
    /// The original body, passed through untouched.
    pub const fn original(body: B) -> Self {
        Self {
            kind: Kind::Original { body },
        }
    }

    /// An empty body held in memory.
    pub const fn empty() -> Self {
        Self {
            kind: Kind::Buffered {
                data: None,
                trailers: None,
            },
        }
    }

    /// A body held in memory.
    pub fn buffered(data: Bytes) -> Self {
        Self {
            kind: Kind::Buffered {
                data: (!data.is_empty()).then_some(data),
                trailers: None,
            },
        }
    }

    /// A copy of a body held in memory, with its trailers (cloned; the `Bytes` clone is a
    /// reference count).
    pub fn replay(data: &Bytes, trailers: Option<&HeaderMap>) -> Self {
        Self {
            kind: Kind::Buffered {
                data: (!data.is_empty()).then(|| data.clone()),
                trailers: trailers.map(|t| Box::new(t.clone())),
            },
        }
    }

    /// A body held in memory, with its trailers (as [`ReadBody`] reads them).
    pub fn with_trailers(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Buffered {
                data: (!data.is_empty()).then_some(data),
                trailers: trailers.map(Box::new),
            },
        }
    }

    /// What was read of `rest` (`prefix`), then the rest of it.
    pub fn prefixed(prefix: Bytes, rest: B) -> Self {
        Self {
            kind: Kind::Prefixed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
        }
    }

    /// Whether this body is held in memory (and so could be sent again).
    pub fn is_buffered(&self) -> bool {
        matches!(self.kind, Kind::Buffered { .. })
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Original { .. } => "original",
            Kind::Buffered { .. } => "buffered",
            Kind::Prefixed { .. } => "prefixed",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

impl<B: Body<Data = Bytes>> Body for ReplayBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Original { body } => body.poll_frame(cx),
            KindProj::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
            KindProj::Prefixed { prefix, rest } => {
                if let Some(d) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                rest.poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Original { body } => body.is_end_stream(),
            Kind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Prefixed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Original { body } => body.size_hint(),
            Kind::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Prefixed { prefix, rest } => {
                let p = prefix.as_ref().map_or(0, |d| d.len() as u64);
                let h = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower() + p);
                if let Some(u) = h.upper() {
                    out.set_upper(u + p);
                }
                out
            }
        }
    }
}

/// A body type that a [`ReplayBody`] of itself can be turned back into, so that a handler
/// behind a body-reading layer sees the body type it was written for.
///
/// Implemented for axum's `Body` (feature `axum`): the original body is handed back as it
/// was (no allocation on pass-through); a buffered or prefixed one is wrapped with
/// `Body::new`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rebuilt from a `ReplayBody`: a body-reading layer (idempotency, shadowing) cannot hand the handler its own body type",
    label = "no `FromReplayBody` for `{Self}`",
    note = "for axum's `Body`, enable the `axum` feature (`palisade = {{ features = [\"axum\", \"idempotency\"] }}` or `palisade-core = {{ features = [\"axum\"] }}`)",
    note = "for other body types, implement `FromReplayBody` or use the `IdempotencyLayer` without `idempotency_with`"
)]
pub trait FromReplayBody: Sized {
    /// Turns `body` back into `Self`.
    fn from_replay(body: ReplayBody<Self>) -> Self;
}

#[cfg(feature = "axum")]
impl FromReplayBody for axum::body::Body {
    fn from_replay(body: ReplayBody<Self>) -> Self {
        match body.kind {
            Kind::Original { body } => body,
            kind => Self::new(ReplayBody { kind }),
        }
    }
}

/// Layer whose service takes `Request<ReplayBody<B>>` and calls its inner service with
/// `Request<B>` ([`FromReplayBody`]). Put it right inside a layer that reads bodies
/// (idempotency, shadowing) so that an axum handler gets axum's `Body` again:
///
/// ```
/// # #[cfg(feature = "axum")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::body::Body;
/// use palisade_core::body::{ReplayBody, UnwrapReplayLayer};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let handler = service_fn(|req: http::Request<Body>| async move {
///     Ok::<_, std::convert::Infallible>(req.into_body())
/// });
/// let svc = UnwrapReplayLayer::new().layer(handler);
/// let req = http::Request::new(ReplayBody::<Body>::buffered("hi".into()));
/// let body = svc.oneshot(req).await.unwrap();
/// assert_eq!(axum::body::to_bytes(body, 16).await.unwrap(), "hi");
/// # }
/// # #[cfg(not(feature = "axum"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct UnwrapReplayLayer(());

impl UnwrapReplayLayer {
    /// The layer.
    pub const fn new() -> Self {
        Self(())
    }
}

impl<S> Layer<S> for UnwrapReplayLayer {
    type Service = UnwrapReplay<S>;
    fn layer(&self, inner: S) -> UnwrapReplay<S> {
        UnwrapReplay { inner }
    }
}

/// Service of [`UnwrapReplayLayer`].
#[derive(Debug, Clone)]
pub struct UnwrapReplay<S> {
    inner: S,
}

impl<S> UnwrapReplay<S> {
    crate::define_inner_service_accessors!();
}

impl<S, B> Service<Request<ReplayBody<B>>> for UnwrapReplay<S>
where
    S: Service<Request<B>>,
    B: FromReplayBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReplayBody<B>>) -> S::Future {
        self.inner.call(req.map(B::from_replay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn each_kind_yields_its_bytes_and_hints() {
        let original = ReplayBody::original(Full::new(Bytes::from_static(b"abc")));
        assert_eq!(original.size_hint().exact(), Some(3));
        assert_eq!(original.collect().await.unwrap().to_bytes(), "abc");

        let empty = ReplayBody::<Full<Bytes>>::empty();
        assert!(empty.is_end_stream() && empty.is_buffered());

        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "1".parse().unwrap());
        let replay = ReplayBody::<Full<Bytes>>::replay(&Bytes::from_static(b"hi"), Some(&trailers));
        assert_eq!(replay.size_hint().exact(), Some(2));
        let collected = replay.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), "hi");

        let rest = Full::new(Bytes::from_static(b"def"));
        let prefixed = ReplayBody::prefixed(Bytes::from_static(b"abc"), rest);
        assert!(!prefixed.is_buffered());
        assert_eq!(prefixed.size_hint().exact(), Some(6));
        assert_eq!(prefixed.collect().await.unwrap().to_bytes(), "abcdef");
    }
}
