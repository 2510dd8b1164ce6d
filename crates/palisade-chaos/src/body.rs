//! [`FaultBody`]: the response body, passed through, throttled or an abort's answer.

use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::layer::ActiveGuard;

pin_project! {
    /// Response body of [`Fault`](crate::Fault): the inner body (possibly limited to a
    /// bandwidth), or the body of an injected abort.
    pub struct FaultBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Throttled { #[pin] body: B, throttle: Box<Throttle> },
        // Boxed, so that the passthrough body is the inner one plus a tag: an abort's body
        // only exists when a fault fired, and a larger `FaultBody` costs every response a copy.
        Full { body: Box<Full<Bytes>> },
    }
}

/// Bandwidth state: data is released in chunks of 1/16 s worth of bytes, each followed by
/// the time it takes at the configured rate (as Envoy's response rate limit does).
struct Throttle {
    rate: u64,
    chunk: usize,
    pending: Bytes,
    sleep: Pin<Box<Sleep>>,
    waiting: bool,
    /// When the first byte went out, and how many went out since: each chunk is released
    /// at `start + sent / rate`, so timer rounding never accumulates.
    start: Option<Instant>,
    sent: u64,
    _guard: Option<ActiveGuard>,
}

impl<B> std::fmt::Debug for FaultBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Throttled { .. } => "throttled",
            Kind::Full { .. } => "abort",
        };
        f.debug_tuple("FaultBody").field(&kind).finish()
    }
}

impl<B> FaultBody<B> {
    #[inline]
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }
    pub(crate) fn full(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Full {
                body: Box::new(body),
            },
        }
    }
    pub(crate) fn throttled(body: B, rate: NonZeroU64, guard: Option<ActiveGuard>) -> Self {
        let rate = rate.get();
        Self {
            kind: Kind::Throttled {
                body,
                throttle: Box::new(Throttle {
                    rate,
                    chunk: usize::try_from((rate / 16).max(1)).unwrap_or(usize::MAX),
                    pending: Bytes::new(),
                    sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
                    waiting: false,
                    start: None,
                    sent: 0,
                    _guard: guard,
                }),
            },
        }
    }
}

impl<B: Body<Data = Bytes>> Body for FaultBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { body } => match ready!(Pin::new(&mut **body).poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(Err(never)) => match never {},
                None => Poll::Ready(None),
            },
            KindProj::Throttled { mut body, throttle } => loop {
                if throttle.waiting {
                    ready!(throttle.sleep.as_mut().poll(cx));
                    throttle.waiting = false;
                }
                if !throttle.pending.is_empty() {
                    let n = throttle.chunk.min(throttle.pending.len());
                    let out = throttle.pending.split_to(n);
                    let start = *throttle.start.get_or_insert_with(Instant::now);
                    throttle.sent += n as u64;
                    let nanos =
                        (u128::from(throttle.sent) * 1_000_000_000) / u128::from(throttle.rate);
                    let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                    throttle
                        .sleep
                        .as_mut()
                        .reset(start + wait.min(crate::MAX_DELAY * 24));
                    throttle.waiting = true;
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                match ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => {
                            throttle.pending = data.copy_to_bytes(data.remaining());
                        }
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    other => return Poll::Ready(other),
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { body } => body.is_end_stream(),
            Kind::Throttled { body, throttle } => {
                throttle.pending.is_empty() && !throttle.waiting && body.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { body } => body.size_hint(),
            Kind::Throttled { body, throttle } => {
                let inner = body.size_hint();
                let pending = throttle.pending.len() as u64;
                let mut hint = SizeHint::new();
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(pending));
                }
                hint.set_lower(inner.lower().saturating_add(pending));
                hint
            }
        }
    }
}
