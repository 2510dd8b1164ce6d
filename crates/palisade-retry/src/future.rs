//! The response future of [`Retry`](crate::Retry): a named state machine, no boxing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, Request};
use http_body::Body;
use palisade_core::{BoxError, Deadline, Elapsed};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::backoff::BackoffState;
use crate::body::RetryBody;
use crate::events::{GiveUpReason, RetryEvent};
use crate::head::{HeadCopy, is_grpc};
use crate::layer::Shared;
use crate::policy::{Decision, Predicate};

pin_project! {
    /// Response future for [`Retry`](crate::Retry).
    pub struct ResponseFuture<S, B, P>
    where
        S: Service<Request<RetryBody<B>>>,
    {
        #[pin]
        state: State<S::Future, B>,
        timer: BoxTimer,
        ctx: Ctx<S, P>,
    }
}

impl<S, B, P> fmt::Debug for ResponseFuture<S, B, P>
where
    S: Service<Request<RetryBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.ctx.attempts)
            .finish_non_exhaustive()
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Reading a body that was still streaming when `call` returned. Boxed: it holds the
        // request head (224 bytes), which would otherwise make every future that large.
        Buffering { buf: Box<Buffering<B>> },
        Calling { #[pin] fut: F },
        Sleeping,
        Readying,
        // Reading the body failed in `call`.
        Failed { err: Option<BoxError> },
        Done,
    }
}

pin_project! {
    #[project = TimerProj]
    pub(crate) enum Timer {
        Off,
        On { #[pin] sleep: Sleep },
    }
}

impl Timer {
    pub(crate) fn after(d: Option<Duration>) -> Self {
        match d {
            Some(d) => Self::On {
                sleep: tokio::time::sleep(d),
            },
            None => Self::Off,
        }
    }
}

/// A lazily boxed timer for backoff and per-attempt timeouts: nothing is allocated (and
/// the future stays small) unless a retry or a per-attempt timeout needs it; the box is
/// reused across attempts.
#[derive(Debug, Default)]
pub(crate) struct BoxTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl BoxTimer {
    #[inline]
    pub(crate) fn new(d: Option<Duration>) -> Self {
        let mut t = Self::default();
        t.arm(d);
        t
    }

    /// Arms the timer `d` from now (`None` disarms it).
    #[inline]
    pub(crate) fn arm(&mut self, d: Option<Duration>) {
        let Some(d) = d else {
            self.armed = false;
            return;
        };
        match &mut self.sleep {
            Some(s) => s.as_mut().reset(Instant::now() + d),
            None => self.sleep = Some(Box::pin(tokio::time::sleep(d))),
        }
        self.armed = true;
    }

    /// Ready once an armed timer fires (immediately if disarmed).
    #[inline]
    pub(crate) fn poll_sleep(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&mut self.sleep, self.armed) {
            (Some(s), true) => s.as_mut().poll(cx),
            _ => Poll::Ready(()),
        }
    }

    /// Whether an armed timer has fired.
    #[inline]
    pub(crate) fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.armed && self.poll_sleep(cx).is_ready()
    }
}

/// gRFC A6: sent on retries of gRPC calls.
const GRPC_PREVIOUS_RPC_ATTEMPTS: http::HeaderName =
    http::HeaderName::from_static("grpc-previous-rpc-attempts");

enum Collected {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(b) => b.len(),
            Self::Many(b) => b.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        *self = match std::mem::replace(self, Self::Empty) {
            Self::Empty => Self::One(data),
            Self::One(first) => {
                let mut buf = BytesMut::with_capacity(first.len() + data.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
                Self::Many(buf)
            }
            Self::Many(mut buf) => {
                buf.extend_from_slice(&data);
                Self::Many(buf)
            }
        };
    }

    fn finish(&mut self) -> Bytes {
        match std::mem::replace(self, Self::Empty) {
            Self::Empty => Bytes::new(),
            Self::One(b) => b,
            Self::Many(b) => b.freeze(),
        }
    }
}

/// A body being read into the replay buffer, with the head it will be sent with.
struct Buffering<B> {
    parts: Option<Parts>,
    body: Option<B>,
    collected: Collected,
    trailers: Option<HeaderMap>,
}

/// A body read to its end, or to just past the replay limit.
enum Read<B> {
    /// The whole body and its trailers.
    Complete(Bytes, Option<HeaderMap>),
    /// Over the limit: what was read so far, then the rest.
    TooLarge(Bytes, B),
}

impl<B> Buffering<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn new(body: B) -> Self {
        Self {
            parts: None,
            body: Some(body),
            collected: Collected::Empty,
            trailers: None,
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<Result<Read<B>, BoxError>> {
        let body = self.body.as_mut().expect("body to read");
        loop {
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => break,
                Some(Err(e)) => return Poll::Ready(Err(e.into())),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let over = self.collected.len() + data.len() > limit;
                        self.collected.push(data);
                        if over {
                            let rest = self.body.take().expect("body");
                            return Poll::Ready(Ok(Read::TooLarge(self.collected.finish(), rest)));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            self.trailers = Some(t);
                        }
                    }
                },
            }
        }
        self.body = None;
        Poll::Ready(Ok(Read::Complete(
            self.collected.finish(),
            self.trailers.take(),
        )))
    }
}

struct Ctx<S, P> {
    shared: Arc<Shared<P>>,
    /// The readied service for the first attempt, then a clone per retry.
    svc: Option<S>,
    /// The copy retries are rebuilt from; `None` means no (more) retries for this request.
    head: Option<HeadCopy>,
    /// The replay buffer.
    data: Bytes,
    trailers: Option<Box<HeaderMap>>,
    attempts: u32,
    backoff: BackoffState,
    deadline: Option<Deadline>,
}

/// The verdict on an attempt's result (which the caller keeps: moving a response through
/// here would copy it twice more).
pub(crate) enum Next {
    /// Return the result.
    Return,
    /// Drop it and retry after this delay.
    Retry(Duration),
}

impl<S, P> Ctx<S, P> {
    fn new(shared: Arc<Shared<P>>) -> Self {
        Self {
            shared,
            svc: None,
            head: None,
            data: Bytes::new(),
            trailers: None,
            attempts: 0,
            backoff: BackoffState::new(),
            deadline: None,
        }
    }

    /// The first attempt goes out with the original head (nothing copied is sent); a copy is
    /// kept for retries.
    #[inline]
    fn send_first<B>(&mut self, svc: &mut S, parts: Parts) -> S::Future
    where
        S: Service<Request<RetryBody<B>>>,
    {
        self.head = HeadCopy::new(&parts);
        let body = RetryBody::replay(&self.data, self.trailers.as_deref());
        svc.call(Request::from_parts(parts, body))
    }

    /// A body over the replay limit: sent once, never retried.
    fn send_once<B>(&mut self, svc: &mut S, parts: Parts, prefix: Bytes, rest: B) -> S::Future
    where
        S: Service<Request<RetryBody<B>>>,
    {
        let limit = self.shared.body_limit;
        self.shared
            .listeners
            .emit_named(|instance| RetryEvent::BodyTooLarge { instance, limit });
        svc.call(Request::from_parts(
            parts,
            RetryBody::prefixed(prefix, rest),
        ))
    }

    /// A retry, rebuilt from the copy.
    fn next_request<B>(&self) -> Option<Request<RetryBody<B>>> {
        let head = self.head.as_ref()?;
        let mut req = head.rebuild(RetryBody::replay(&self.data, self.trailers.as_deref()))?;
        if is_grpc(req.headers()) {
            // gRFC A6: attempts after the first say how many came before.
            req.headers_mut().insert(
                GRPC_PREVIOUS_RPC_ATTEMPTS,
                http::HeaderValue::from(self.attempts),
            );
        }
        Some(req)
    }

    fn decide<R>(&mut self, result: Result<&R, &BoxError>) -> Next
    where
        P: Predicate<R>,
    {
        decide(
            &self.shared,
            self.attempts,
            &mut self.backoff,
            self.deadline,
            self.head.is_some(),
            result,
        )
    }
}

fn give_up<P>(shared: &Shared<P>, attempts: u32, reason: GiveUpReason) {
    shared.listeners.emit_named(|instance| RetryEvent::GaveUp {
        instance,
        attempts,
        reason,
    });
}

/// The verdict after attempt number `attempts`: return the result, or retry after a delay
/// (budget withdrawn, event emitted).
pub(crate) fn decide<P, R>(
    shared: &Shared<P>,
    attempts: u32,
    backoff: &mut BackoffState,
    deadline: Option<Deadline>,
    can_retry: bool,
    result: Result<&R, &BoxError>,
) -> Next
where
    P: Predicate<R>,
{
    let decision = shared.predicate.check(result);
    let (reason, after) = match decision {
        Decision::Success => {
            if let Some(b) = &shared.budget {
                b.record(true);
            }
            return Next::Return;
        }
        Decision::Return => return Next::Return,
        Decision::DontRetry => {
            if let Some(b) = &shared.budget {
                b.record(false);
            }
            if can_retry {
                give_up(shared, attempts, GiveUpReason::Pushback);
            }
            return Next::Return;
        }
        Decision::Retry { reason, after } => {
            if let Some(b) = &shared.budget {
                b.record(false);
            }
            (reason, after)
        }
    };
    if !can_retry {
        return Next::Return;
    }
    if attempts >= shared.max_attempts {
        shared
            .listeners
            .emit_named(|instance| RetryEvent::Exhausted { instance, attempts });
        return Next::Return;
    }
    let delay = match after {
        Some(d) if d > shared.backoff.max() => {
            give_up(shared, attempts, GiveUpReason::ServerDelayTooLong);
            return Next::Return;
        }
        Some(d) => {
            backoff.reset();
            d
        }
        None => {
            let mut rng = shared.rng.lock().unwrap_or_else(PoisonError::into_inner);
            backoff.next(&shared.backoff, &mut *rng)
        }
    };
    if let Some(deadline) = deadline
        && Instant::now()
            .checked_add(delay)
            .is_none_or(|at| at >= deadline.instant())
    {
        give_up(shared, attempts, GiveUpReason::Deadline);
        return Next::Return;
    }
    if let Some(b) = &shared.budget
        && !b.withdraw()
    {
        shared
            .listeners
            .emit_named(|instance| RetryEvent::BudgetExhausted { instance, attempts });
        return Next::Return;
    }
    shared.listeners.emit_named(|instance| RetryEvent::Attempt {
        instance,
        n: attempts + 1,
        delay,
        reason,
    });
    Next::Retry(delay)
}

impl<S, B, P> ResponseFuture<S, B, P>
where
    S: Service<Request<RetryBody<B>>>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn calling(fut: S::Future, ctx: Ctx<S, P>) -> Self {
        Self {
            state: State::Calling { fut },
            timer: BoxTimer::new(ctx.shared.per_attempt_timeout),
            ctx,
        }
    }

    /// A request that is not retried: one call, already made.
    pub(crate) fn single(fut: S::Future, shared: Arc<Shared<P>>) -> Self {
        Self::calling(fut, Ctx::new(shared))
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
            let fut = inner.call(req.map(|_| RetryBody::empty()));
            let svc = head.as_ref().map(|_| inner.clone());
            return Self {
                state: State::Calling { fut },
                timer: BoxTimer::new(shared.per_attempt_timeout),
                ctx: Ctx {
                    svc,
                    head,
                    deadline,
                    ..Ctx::new(shared)
                },
            };
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
        let mut ctx = Ctx::new(shared);
        ctx.deadline = deadline;
        let (parts, body) = req.into_parts();
        let mut buf = Buffering::new(body);
        // A no-op waker: if the body is not ready, the future polls it again with its own.
        let mut cx = Context::from_waker(Waker::noop());
        let read = match buf.poll_read(&mut cx, ctx.shared.body_limit) {
            Poll::Ready(Ok(read)) => read,
            Poll::Ready(Err(err)) => {
                return Self {
                    state: State::Failed { err: Some(err) },
                    timer: BoxTimer::default(),
                    ctx,
                };
            }
            Poll::Pending => {
                // Still streaming: the future reads the rest and sends with the readied
                // service; a clone stays behind.
                buf.parts = Some(parts);
                let clone = inner.clone();
                ctx.svc = Some(std::mem::replace(inner, clone));
                return Self {
                    state: State::Buffering { buf: Box::new(buf) },
                    timer: BoxTimer::default(),
                    ctx,
                };
            }
        };
        let fut = match read {
            Read::Complete(data, trailers) => {
                ctx.data = data;
                ctx.trailers = trailers.map(Box::new);
                let fut = ctx.send_first(inner, parts);
                if ctx.head.is_some() {
                    ctx.svc = Some(inner.clone());
                }
                fut
            }
            Read::TooLarge(prefix, rest) => ctx.send_once(inner, parts, prefix, rest),
        };
        Self::calling(fut, ctx)
    }
}

impl<S, B, P> Future for ResponseFuture<S, B, P>
where
    S: Service<Request<RetryBody<B>>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    P: Predicate<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Buffering { buf } => {
                    let read = ready!(buf.poll_read(cx, this.ctx.shared.body_limit));
                    let parts = buf.parts.take().expect("request head");
                    let ctx = &mut *this.ctx;
                    let mut svc = ctx.svc.take().expect("readied service");
                    let fut = match read {
                        Err(e) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(e));
                        }
                        Ok(Read::Complete(data, trailers)) => {
                            ctx.data = data;
                            ctx.trailers = trailers.map(Box::new);
                            ctx.send_first(&mut svc, parts)
                        }
                        Ok(Read::TooLarge(prefix, rest)) => {
                            ctx.send_once(&mut svc, parts, prefix, rest)
                        }
                    };
                    ctx.svc = Some(svc);
                    this.state.set(State::Calling { fut });
                    this.timer.arm(this.ctx.shared.per_attempt_timeout);
                }
                StateProj::Failed { err } => {
                    let err = err.take().expect("body error");
                    this.state.set(State::Done);
                    return Poll::Ready(Err(err));
                }
                StateProj::Calling { fut } => {
                    let result = match fut.poll(cx) {
                        Poll::Ready(r) => r.map_err(Into::into),
                        Poll::Pending => {
                            if !this.timer.fired(cx) {
                                return Poll::Pending;
                            }
                            let t = this.ctx.shared.per_attempt_timeout.unwrap_or_default();
                            Err(Elapsed::new(t).into())
                        }
                    };
                    // Drop the attempt (and its timer) before deciding.
                    this.state.set(State::Done);
                    this.timer.arm(None);
                    this.ctx.attempts += 1;
                    match this.ctx.decide(result.as_ref()) {
                        Next::Return => return Poll::Ready(result),
                        Next::Retry(delay) => {
                            drop(result);
                            this.state.set(State::Sleeping);
                            this.timer.arm(Some(delay));
                        }
                    }
                }
                StateProj::Sleeping => {
                    ready!(this.timer.poll_sleep(cx));
                    this.timer.arm(None);
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    let svc = this.ctx.svc.as_mut().expect("retry service");
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(e.into()));
                    }
                    let Some(req) = this.ctx.next_request() else {
                        // Unreachable: `HeadCopy::new` only keeps heads that parse back.
                        this.state.set(State::Done);
                        return Poll::Ready(Err(
                            "retry: the request head could not be rebuilt".into()
                        ));
                    };
                    let fut = this.ctx.svc.as_mut().expect("retry service").call(req);
                    this.state.set(State::Calling { fut });
                    this.timer.arm(this.ctx.shared.per_attempt_timeout);
                }
                StateProj::Done => panic!("retry ResponseFuture polled after completion"),
            }
        }
    }
}
