//! The response future of [`Retry`](crate::Retry) for `http::Request`s: a named state
//! machine, no boxing. The request body is read first if it is still streaming; the
//! attempts then run in the loop shared with the reqwest path (`attempts.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request};
use http_body::Body;
use palisade_core::body::{Read, ReadBody};
use palisade_core::grpc::{GRPC_PREVIOUS_RPC_ATTEMPTS, is_grpc};
use palisade_core::{BoxError, Deadline};
use pin_project_lite::pin_project;
use tower_service::Service;

pub use crate::any::AnyFuture;
use crate::attempts::{Attempts, Replay, Step};
use crate::body::ReplayBody;
use crate::budget::Budget;
use crate::events::RetryEvent;
use crate::head::HeadCopy;
use crate::layer::Shared;
use crate::policy::Predicate;

pin_project! {
    /// Response future for [`Retry`](crate::Retry).
    pub struct ResponseFuture<S, B, P>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        step: Step<S::Future>,
        reading: Reading<B>,
        attempts: Attempts<S, P>,
        replay: HttpReplay,
    }
}

impl<S, B, P> fmt::Debug for ResponseFuture<S, B, P>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts.sent)
            .finish_non_exhaustive()
    }
}

/// What comes before the first attempt.
enum Reading<B> {
    /// Nothing (the first attempt was sent by `call`), or no longer.
    Done,
    /// A body that was still streaming when `call` returned. Boxed: it holds the request
    /// head (224 bytes), which would otherwise make every future that large.
    Body(Box<Buffering<B>>),
    /// Reading the body failed in `call`.
    Failed(BoxError),
}

/// A body being read into the replay buffer, with the head it will be sent with.
struct Buffering<B> {
    parts: Parts,
    reader: ReadBody<B>,
}

/// What a retry of an `http::Request` is rebuilt from.
struct HttpReplay {
    /// The head copy; `None` means no (more) retries for this request.
    head: Option<HeadCopy>,
    /// The replay buffer.
    data: Bytes,
    trailers: Option<Box<HeaderMap>>,
}

impl<B> Replay<Request<ReplayBody<B>>> for HttpReplay {
    fn can_retry(&self) -> bool {
        self.head.is_some()
    }

    fn next(&self, attempts: u32) -> Option<Request<ReplayBody<B>>> {
        let head = self.head.as_ref()?;
        let mut req = head.rebuild(ReplayBody::replay(&self.data, self.trailers.as_deref()))?;
        if is_grpc(req.headers()) {
            // gRFC A6: attempts after the first say how many came before.
            req.headers_mut().insert(
                GRPC_PREVIOUS_RPC_ATTEMPTS,
                http::HeaderValue::from(attempts),
            );
        }
        Some(req)
    }
}

impl HttpReplay {
    const NONE: Self = Self {
        head: None,
        data: Bytes::new(),
        trailers: None,
    };

    /// Sends the first attempt once the body is read: within the limit, with the original
    /// head (a copy is kept for retries); over it, sent once (what was read, then the rest)
    /// and never retried.
    fn send_first<S, B, P>(
        &mut self,
        shared: &Shared<P>,
        svc: &mut S,
        parts: Parts,
        reader: ReadBody<B>,
        read: Read,
    ) -> S::Future
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        match read {
            Read::Complete { data, trailers } => {
                self.data = data;
                self.trailers = trailers.map(Box::new);
                self.head = HeadCopy::new(&parts);
                let body = ReplayBody::replay(&self.data, self.trailers.as_deref());
                svc.call(Request::from_parts(parts, body))
            }
            over @ Read::Over { .. } => {
                let limit = shared.body_limit;
                shared
                    .listeners
                    .emit_named(|instance| RetryEvent::BodyTooLarge { instance, limit });
                svc.call(Request::from_parts(parts, reader.into_replay(over)))
            }
        }
    }
}

impl<S, B, P> ResponseFuture<S, B, P>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn calling(fut: S::Future, attempts: Attempts<S, P>, replay: HttpReplay) -> Self {
        Self {
            step: Step::calling(fut),
            reading: Reading::Done,
            attempts,
            replay,
        }
    }

    /// Sets the budget of the request's host (per-host budgets); `None` leaves the shared one.
    #[inline]
    pub(crate) fn with_host_budget(mut self, budget: Option<Arc<dyn Budget>>) -> Self {
        if budget.is_some() {
            self.attempts.host_budget = budget;
        }
        self
    }

    /// A request that is not retried: one call, already made.
    pub(crate) fn single(fut: S::Future, shared: Arc<Shared<P>>) -> Self {
        Self::calling(fut, Attempts::new(shared, true), HttpReplay::NONE)
    }

    /// A retryable request; `inner` is the readied inner service.
    ///
    /// A body that is already complete (`Empty`, `Full`, a collected body: its frames are
    /// ready at once) is read here and the first attempt is sent by `inner` before
    /// returning, keeping a clone of it for retries. Only a body that is still streaming is
    /// read by the future, which then takes the readied `inner` (leaving a clone).
    #[inline]
    pub(crate) fn retrying(
        inner: &mut S,
        req: Request<B>,
        deadline: Option<Deadline>,
        shared: Arc<Shared<P>>,
    ) -> Self
    where
        S: Clone,
    {
        let body = req.body();
        if body.is_end_stream() || body.size_hint().exact() == Some(0) {
            // The common case (GET, HEAD, DELETE): nothing to read, so nothing is moved
            // but the request itself.
            let head = HeadCopy::of(&req);
            let fut = inner.call(req.map(|_| ReplayBody::empty()));
            let mut attempts = Attempts::new(shared, true);
            attempts.svc = head.as_ref().map(|_| inner.clone());
            attempts.deadline = deadline;
            let replay = HttpReplay {
                head,
                ..HttpReplay::NONE
            };
            return Self::calling(fut, attempts, replay);
        }
        Self::read_then_send(inner, req, deadline, shared)
    }

    /// A request with a body: read it (at once if its frames are ready), then send.
    fn read_then_send(
        inner: &mut S,
        req: Request<B>,
        deadline: Option<Deadline>,
        shared: Arc<Shared<P>>,
    ) -> Self
    where
        S: Clone,
    {
        let (parts, body) = req.into_parts();
        let mut reader = ReadBody::new(body, shared.body_limit);
        // A no-op waker: if the body is not ready, the future polls it again with its own.
        let mut cx = Context::from_waker(Waker::noop());
        let polled = Pin::new(&mut reader).poll(&mut cx);
        let ready = matches!(polled, Poll::Ready(Ok(_)));
        let mut attempts = Attempts::new(shared, ready);
        attempts.deadline = deadline;
        let mut replay = HttpReplay::NONE;
        let reading = match polled {
            Poll::Ready(Ok(read)) => {
                let fut = replay.send_first(&attempts.shared, inner, parts, reader, read);
                if replay.head.is_some() {
                    attempts.svc = Some(inner.clone());
                }
                return Self::calling(fut, attempts, replay);
            }
            Poll::Ready(Err(err)) => Reading::Failed(err.into()),
            Poll::Pending => {
                // Still streaming: the future reads the rest and sends with the readied
                // service; a clone stays behind.
                let clone = inner.clone();
                attempts.svc = Some(std::mem::replace(inner, clone));
                Reading::Body(Box::new(Buffering { parts, reader }))
            }
        };
        Self {
            step: Step::Done,
            reading,
            attempts,
            replay,
        }
    }
}

impl<S, B, P> Future for ResponseFuture<S, B, P>
where
    S: Service<Request<ReplayBody<B>>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    P: Predicate<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        match this.reading {
            Reading::Done => {}
            Reading::Failed(_) => {
                let Reading::Failed(err) = std::mem::replace(this.reading, Reading::Done) else {
                    unreachable!("matched above");
                };
                return Poll::Ready(Err(err));
            }
            Reading::Body(buf) => {
                let read = ready!(Pin::new(&mut buf.reader).poll(cx));
                let Reading::Body(buf) = std::mem::replace(this.reading, Reading::Done) else {
                    unreachable!("matched above");
                };
                let Buffering { parts, reader } = *buf;
                let read = match read {
                    Ok(read) => read,
                    Err(e) => return Poll::Ready(Err(e.into())),
                };
                let attempts = &mut *this.attempts;
                let mut svc = attempts.svc.take().expect("readied service");
                let fut = this
                    .replay
                    .send_first(&attempts.shared, &mut svc, parts, reader, read);
                attempts.svc = Some(svc);
                attempts.start(this.step.as_mut(), fut);
            }
        }
        this.attempts.poll(this.step, &*this.replay, cx)
    }
}
