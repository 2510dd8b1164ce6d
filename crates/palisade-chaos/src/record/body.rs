//! [`RecordBody`]: a body passed through while its first bytes are copied into the recording.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::record::draft::{Captured, Shared};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// What one body contributes to its exchange; deposited when the body ends or is dropped.
#[derive(Debug)]
pub(crate) struct Tap {
    shared: Arc<Shared>,
    side: Side,
    limit: usize,
    captured: Captured,
}

impl Tap {
    pub(crate) fn new(shared: Arc<Shared>, side: Side, limit: usize) -> Self {
        Self {
            shared,
            side,
            limit,
            captured: Captured::default(),
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let captured = std::mem::take(&mut self.captured);
        let side = self.side;
        self.shared.with(|d| match side {
            Side::Request => d.request_body = captured,
            Side::Response => {
                d.response_body = captured;
                d.ended = Some(Instant::now());
            }
        });
    }
}

pin_project! {
    /// A request or response body passed through [`Record`](crate::record::Record); for a
    /// recorded exchange its first bytes (up to the recorder's bound) are copied as they go.
    #[derive(Debug)]
    pub struct RecordBody<B> {
        #[pin]
        inner: B,
        tap: Option<Tap>,
    }
}

impl<B> RecordBody<B> {
    pub(crate) fn new(inner: B, tap: Option<Tap>) -> Self {
        Self { inner, tap }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body<Data = Bytes>> Body for RecordBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(tap), Some(data)) = (this.tap.as_mut(), f.data_ref()) {
                    tap.captured.push(data, tap.limit);
                }
            }
            // The end (or an error): deposit now, so the exchange's timing ends here.
            _ => drop(this.tap.take()),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
