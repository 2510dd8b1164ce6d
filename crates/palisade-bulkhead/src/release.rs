//! When the slot is given back: when the response arrives, or when its body ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::admission::Permit;

/// Decides what holds the slot once the inner service has answered.
pub trait Release<T>: Clone + Send + Sync + 'static {
    /// The response type handed to the caller.
    type Output;
    /// Attaches (or drops) the permit.
    fn attach(response: T, permit: Permit) -> Self::Output;
}

/// The slot is freed when the response future completes (or is dropped). Works for any
/// response type.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnResponse;

impl<T> Release<T> for OnResponse {
    type Output = T;
    fn attach(response: T, permit: Permit) -> T {
        drop(permit);
        response
    }
}

/// The slot is held until the response body has been streamed to its end (or dropped), so
/// a long streaming response keeps counting against the limit. The default for HTTP.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnBodyEnd;

impl<B> Release<http::Response<B>> for OnBodyEnd {
    type Output = http::Response<BulkheadBody<B>>;
    fn attach(response: http::Response<B>, permit: Permit) -> Self::Output {
        response.map(|body| BulkheadBody {
            body,
            permit: Some(permit),
        })
    }
}

pin_project! {
    /// A response body holding a bulkhead slot until its last frame (or its drop).
    pub struct BulkheadBody<B> {
        #[pin]
        body: B,
        permit: Option<Permit>,
    }
}

impl<B> fmt::Debug for BulkheadBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadBody")
            .field("holds_slot", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for BulkheadBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.body.poll_frame(cx));
        if matches!(frame, None | Some(Err(_))) {
            this.permit.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
