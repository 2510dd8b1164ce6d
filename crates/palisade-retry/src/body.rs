//! The request body the inner service sees: the original body, a buffered replayable copy,
//! or (over the limit) the buffered prefix followed by the rest of the original.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// Request body of [`Retry`](crate::Retry)'s inner service.
///
/// `B` must be `Unpin` (every common body is: axum's `Body`, hyper's `Incoming`,
/// `http_body_util::{Full, Empty, BoxBody}`).
#[derive(Debug)]
pub struct RetryBody<B> {
    kind: Kind<B>,
}

#[derive(Debug)]
enum Kind<B> {
    /// Passed through untouched (request not retryable).
    Original(B),
    /// A buffered copy (cheap `Bytes` clone per attempt).
    Replay {
        data: Option<Bytes>,
        // Boxed: trailers are rare, and an inline `HeaderMap` would triple the body's size.
        trailers: Option<Box<HeaderMap>>,
    },
    /// Over the limit: what was read so far, then the rest.
    Prefixed { prefix: Option<Bytes>, rest: B },
}

impl<B> RetryBody<B> {
    pub(crate) const fn original(body: B) -> Self {
        Self {
            kind: Kind::Original(body),
        }
    }

    /// An empty replayable body.
    pub(crate) const fn empty() -> Self {
        Self {
            kind: Kind::Replay {
                data: None,
                trailers: None,
            },
        }
    }

    pub(crate) fn replay(data: &Bytes, trailers: Option<&HeaderMap>) -> Self {
        Self {
            kind: Kind::Replay {
                data: (!data.is_empty()).then(|| data.clone()),
                trailers: trailers.map(|t| Box::new(t.clone())),
            },
        }
    }

    pub(crate) fn prefixed(prefix: Bytes, rest: B) -> Self {
        Self {
            kind: Kind::Prefixed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
        }
    }

    /// Whether this body is a buffered, replayable copy.
    pub fn is_replay(&self) -> bool {
        matches!(self.kind, Kind::Replay { .. })
    }
}

impl<B> Body for RetryBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Original(b) => Pin::new(b).poll_frame(cx),
            Kind::Replay { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
            Kind::Prefixed { prefix, rest } => {
                if let Some(d) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Pin::new(rest).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Original(b) => b.is_end_stream(),
            Kind::Replay { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Prefixed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Original(b) => b.size_hint(),
            Kind::Replay { data, .. } => {
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
