//! Request and response bodies of [`Idempotency`](crate::Idempotency): either the original
//! streaming body (pass-through) or a buffered one. No boxing on the pass-through path.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use palisade_core::body::{Read, ReadBody};
use palisade_core::{AnyRejection, BoxError};
use pin_project_lite::pin_project;

use crate::error::RequestBodyTooLarge;

/// The request body the inner service sees: the original body on pass-through, or the body
/// buffered for fingerprinting. It is palisade-core's `ReplayBody`, the one body type of
/// every layer that reads bodies (retry, shadowing).
pub use palisade_core::body::ReplayBody;

/// The former name of [`ReplayBody`], kept so that existing code compiles.
#[doc(hidden)]
pub type RequestBody<B> = ReplayBody<B>;

/// Reads a request body for its fingerprint (trailers are not part of it); over `limit`
/// bytes, [`RequestBodyTooLarge`] (413).
pub(crate) async fn read_request<B>(body: B, limit: usize) -> Result<Bytes, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match ReadBody::new(body, limit).await.map_err(Into::into)? {
        Read::Complete { data, .. } => Ok(data),
        Read::Over { .. } => Err(AnyRejection::new(RequestBodyTooLarge::new(limit)).into()),
    }
}

/// A handler's response body, read to be stored.
pub(crate) enum Buffered<B> {
    /// Within the limit (trailers are not stored).
    Complete(Bytes),
    /// Over it: what was read, then the rest (boxed, as [`ResponseBody`] streams it on).
    TooLarge(Bytes, Pin<Box<B>>),
}

/// Reads a response body up to `limit` bytes.
pub(crate) async fn buffer_response<B>(body: B, limit: usize) -> Result<Buffered<B>, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut reader = ReadBody::new(Box::pin(body), limit);
    Ok(match (&mut reader).await.map_err(Into::into)? {
        Read::Complete { data, .. } => Buffered::Complete(data),
        Read::Over { prefix } => Buffered::TooLarge(prefix, reader.into_inner()),
    })
}

pin_project! {
    /// The response body: the inner service's body (pass-through), a buffered or replayed
    /// body, or, when a response was too large to store, the buffered prefix followed by the
    /// rest of the inner body.
    pub struct ResponseBody<B> {
        #[pin]
        kind: ResKind<B>,
    }
}

pin_project! {
    #[project = ResKindProj]
    enum ResKind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
        Prefixed { prefix: Option<Bytes>, rest: Pin<Box<B>> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: ResKind::Inner { body },
        }
    }
    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: ResKind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
    pub(crate) fn prefixed(prefix: Bytes, rest: Pin<Box<B>>) -> Self {
        Self {
            kind: ResKind::Prefixed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
        }
    }
    /// Whether this body was buffered (stored or replayed) by the layer.
    pub fn is_buffered(&self) -> bool {
        matches!(self.kind, ResKind::Full { .. })
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("buffered", &self.is_buffered())
            .finish()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            ResKindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            ResKindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResKindProj::Prefixed { prefix, rest } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                rest.as_mut().poll_frame(cx).map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResKind::Inner { body } => body.is_end_stream(),
            ResKind::Full { data } => data.is_none(),
            ResKind::Prefixed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResKind::Inner { body } => body.size_hint(),
            ResKind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResKind::Prefixed { prefix, rest } => {
                let p = prefix.as_ref().map_or(0, |d| d.len() as u64);
                let r = rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(r.lower() + p);
                if let Some(u) = r.upper() {
                    h.set_upper(u + p);
                }
                h
            }
        }
    }
}
