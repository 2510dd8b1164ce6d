//! The response future of [`Retry`](crate::Retry): a named state machine, no boxing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, ready};
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
use crate::layer::Shared;
use crate::policy::{Decision, Predicate};

pin_project! {
    /// Response future for [`Retry`](crate::Retry).
    pub struct ResponseFuture<S, B, P>
    where
        S: Service<Request<RetryBody<B>>>,
    {
        #[pin]
        state: State<S::Future>,
        timer: BoxTimer,
        ctx: Ctx<S, B, P>,
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
    enum State<F> {
        Buffering,
        Calling { #[pin] fut: F },
        Sleeping,
        Readying,
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
    pub(crate) fn new(d: Option<Duration>) -> Self {
        let mut t = Self::default();
        t.arm(d);
        t
    }

    /// Arms the timer `d` from now (`None` disarms it).
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
    pub(crate) fn poll_sleep(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&mut self.sleep, self.armed) {
            (Some(s), true) => s.as_mut().poll(cx),
            _ => Poll::Ready(()),
        }
    }

    /// Whether an armed timer has fired.
    pub(crate) fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.armed && self.poll_sleep(cx).is_ready()
    }
}

/// gRFC A6: sent on retries of gRPC calls.
const GRPC_PREVIOUS_RPC_ATTEMPTS: http::HeaderName =
    http::HeaderName::from_static("grpc-previous-rpc-attempts");

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

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

struct Ctx<S, B, P> {
    shared: Arc<Shared<P>>,
    /// The readied service for the first buffered attempt, then a clone per retry.
    svc: Option<S>,
    /// The request template; `None` means no (more) retries for this request.
    parts: Option<Parts>,
    body: Option<B>,
    collected: Collected,
    data: Bytes,
    trailers: Option<HeaderMap>,
    attempts: u32,
    backoff: BackoffState,
    deadline: Option<Deadline>,
}

pub(crate) enum Next<R> {
    Return(Result<R, BoxError>),
    Retry(Duration),
}

impl<S, B, P> Ctx<S, B, P> {
    fn next_request(&self) -> Request<RetryBody<B>> {
        let mut parts = self.parts.clone().expect("retry template");
        if self.attempts > 0 && is_grpc(&parts.headers) {
            // gRFC A6: attempts after the first say how many came before.
            parts.headers.insert(
                GRPC_PREVIOUS_RPC_ATTEMPTS,
                http::HeaderValue::from(self.attempts),
            );
        }
        Request::from_parts(parts, RetryBody::replay(&self.data, self.trailers.as_ref()))
    }

    fn decide<R>(&mut self, result: Result<R, BoxError>) -> Next<R>
    where
        P: Predicate<R>,
    {
        decide(
            &self.shared,
            self.attempts,
            &mut self.backoff,
            self.deadline,
            self.parts.is_some(),
            result,
        )
    }
}

fn give_up<P>(shared: &Shared<P>, attempts: u32, reason: GiveUpReason) {
    shared
        .listeners
        .emit_with(|| RetryEvent::GaveUp { attempts, reason });
}

/// The verdict after attempt number `attempts`: return the result, or retry after a delay
/// (budget withdrawn, event emitted).
pub(crate) fn decide<P, R>(
    shared: &Shared<P>,
    attempts: u32,
    backoff: &mut BackoffState,
    deadline: Option<Deadline>,
    can_retry: bool,
    result: Result<R, BoxError>,
) -> Next<R>
where
    P: Predicate<R>,
{
    let decision = shared.predicate.check(result.as_ref());
    let (reason, after) = match decision {
        Decision::Success => {
            if let Some(b) = &shared.budget {
                b.record(true);
            }
            return Next::Return(result);
        }
        Decision::Return => return Next::Return(result),
        Decision::DontRetry => {
            if let Some(b) = &shared.budget {
                b.record(false);
            }
            if can_retry {
                give_up(shared, attempts, GiveUpReason::Pushback);
            }
            return Next::Return(result);
        }
        Decision::Retry { reason, after } => {
            if let Some(b) = &shared.budget {
                b.record(false);
            }
            (reason, after)
        }
    };
    if !can_retry {
        return Next::Return(result);
    }
    if attempts >= shared.max_attempts {
        shared
            .listeners
            .emit_with(|| RetryEvent::Exhausted { attempts });
        return Next::Return(result);
    }
    let delay = match after {
        Some(d) if d > shared.backoff.max() => {
            give_up(shared, attempts, GiveUpReason::ServerDelayTooLong);
            return Next::Return(result);
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
        && Instant::now() + delay >= deadline.instant()
    {
        give_up(shared, attempts, GiveUpReason::Deadline);
        return Next::Return(result);
    }
    if let Some(b) = &shared.budget
        && !b.withdraw()
    {
        shared
            .listeners
            .emit_with(|| RetryEvent::BudgetExhausted { attempts });
        return Next::Return(result);
    }
    shared.listeners.emit_with(|| RetryEvent::Attempt {
        n: attempts + 1,
        delay,
        reason,
    });
    drop(result);
    Next::Retry(delay)
}

impl<S, B, P> Ctx<S, B, P>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Reads the body into the replay buffer; over the limit, gives up retrying and
    /// returns the request with the read prefix followed by the rest.
    fn poll_buffer(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Request<RetryBody<B>>, BoxError>> {
        let limit = self.shared.body_limit;
        let body = self.body.as_mut().expect("body to buffer");
        loop {
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => break,
                Some(Err(e)) => return Poll::Ready(Err(e.into())),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if self.collected.len() + data.len() > limit {
                            self.collected.push(data);
                            let prefix = self.collected.finish();
                            let rest = self.body.take().expect("body");
                            let parts = self.parts.take().expect("template");
                            self.shared
                                .listeners
                                .emit_with(|| RetryEvent::BodyTooLarge { limit });
                            return Poll::Ready(Ok(Request::from_parts(
                                parts,
                                RetryBody::prefixed(prefix, rest),
                            )));
                        }
                        self.collected.push(data);
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
        self.data = self.collected.finish();
        Poll::Ready(Ok(self.next_request()))
    }
}

impl<S, B, P> ResponseFuture<S, B, P>
where
    S: Service<Request<RetryBody<B>>>,
    B: Body<Data = Bytes> + Unpin,
{
    fn ctx(shared: Arc<Shared<P>>) -> Ctx<S, B, P> {
        Ctx {
            shared,
            svc: None,
            parts: None,
            body: None,
            collected: Collected::Empty,
            data: Bytes::new(),
            trailers: None,
            attempts: 0,
            backoff: BackoffState::new(),
            deadline: None,
        }
    }

    /// A request that is not retried: one call, already made.
    pub(crate) fn single(fut: S::Future, shared: Arc<Shared<P>>) -> Self {
        let timer = BoxTimer::new(shared.per_attempt_timeout);
        Self {
            state: State::Calling { fut },
            timer,
            ctx: Self::ctx(shared),
        }
    }

    /// A retryable request; `svc` is the readied inner service.
    pub(crate) fn retrying(
        mut svc: S,
        parts: Parts,
        body: B,
        deadline: Option<Deadline>,
        shared: Arc<Shared<P>>,
    ) -> Self {
        let mut ctx = Self::ctx(shared);
        ctx.deadline = deadline;
        ctx.parts = Some(parts);
        if body.is_end_stream() || body.size_hint().exact() == Some(0) {
            // Nothing to buffer: call at once.
            let req = ctx.next_request();
            let fut = svc.call(req);
            ctx.svc = Some(svc);
            let timer = BoxTimer::new(ctx.shared.per_attempt_timeout);
            return Self {
                state: State::Calling { fut },
                timer,
                ctx,
            };
        }
        ctx.svc = Some(svc);
        ctx.body = Some(body);
        Self {
            state: State::Buffering,
            timer: BoxTimer::default(),
            ctx,
        }
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
                StateProj::Buffering => match ready!(this.ctx.poll_buffer(cx)) {
                    Err(e) => {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(e));
                    }
                    Ok(req) => {
                        let fut = this.ctx.svc.as_mut().expect("readied service").call(req);
                        this.state.set(State::Calling { fut });
                        this.timer.arm(this.ctx.shared.per_attempt_timeout);
                    }
                },
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
                    match this.ctx.decide(result) {
                        Next::Return(r) => return Poll::Ready(r),
                        Next::Retry(delay) => {
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
                    let req = this.ctx.next_request();
                    let fut = this.ctx.svc.as_mut().expect("retry service").call(req);
                    this.state.set(State::Calling { fut });
                    this.timer.arm(this.ctx.shared.per_attempt_timeout);
                }
                StateProj::Done => panic!("retry ResponseFuture polled after completion"),
            }
        }
    }
}
