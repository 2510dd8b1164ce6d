//! Response future of [`Retry`](crate::Retry): a state machine over buffering, calling,
//! deciding and sleeping. Boxes nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body;
use palisade_core::{BoxError, Deadline, Elapsed};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::body::RetryBody;
use crate::events::RetryEvent;
use crate::layer::Settings;
use crate::policy::{Verdict, default_verdict};

/// Everything needed to send the request again.
#[derive(Debug)]
pub(crate) struct Template {
    parts: http::request::Parts,
    body: Bytes,
}

impl Template {
    pub(crate) fn new(parts: http::request::Parts, body: Bytes) -> Self {
        Self { parts, body }
    }
    fn build<B>(&self) -> Request<RetryBody<B>> {
        let mut req = Request::new(RetryBody::replay(self.body.clone()));
        *req.method_mut() = self.parts.method.clone();
        *req.uri_mut() = self.parts.uri.clone();
        *req.version_mut() = self.parts.version;
        *req.headers_mut() = self.parts.headers.clone();
        *req.extensions_mut() = self.parts.extensions.clone();
        req
    }
}

pin_project! {
    /// Response future of [`Retry`](crate::Retry).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<RetryBody<B>>>,
    {
        #[pin]
        state: State<S::Future>,
        svc: Option<S>,
        template: Option<Template>,
        buffering: Option<(http::request::Parts, B, BytesMut)>,
        settings: Option<Arc<Settings>>,
        deadline: Option<Deadline>,
        attempts: u32,
        previous_delay: Duration,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Buffering,
        Ready,
        Calling { #[pin] future: F, #[pin] timer: Option<Sleep> },
        Sleeping { #[pin] sleep: Sleep },
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<RetryBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<RetryBody<B>>>,
{
    /// A request that is not retried: just the inner future.
    pub(crate) fn once(future: S::Future) -> Self {
        Self {
            state: State::Calling {
                future,
                timer: None,
            },
            svc: None,
            template: None,
            buffering: None,
            settings: None,
            deadline: None,
            attempts: 1,
            previous_delay: Duration::ZERO,
        }
    }

    /// A retryable request with its body already in memory: first attempt now.
    pub(crate) fn start(
        mut svc: S,
        template: Template,
        settings: Arc<Settings>,
        deadline: Option<Deadline>,
    ) -> Self {
        let future = svc.call(template.build());
        let timer = settings.attempt_timeout.map(tokio::time::sleep);
        Self {
            state: State::Calling { future, timer },
            svc: Some(svc),
            template: Some(template),
            buffering: None,
            settings: Some(settings),
            deadline,
            attempts: 1,
            previous_delay: Duration::ZERO,
        }
    }

    /// A retryable request whose body must be read into the replay buffer first.
    pub(crate) fn buffer(
        svc: S,
        parts: http::request::Parts,
        body: B,
        settings: Arc<Settings>,
        deadline: Option<Deadline>,
    ) -> Self {
        Self {
            state: State::Buffering,
            svc: Some(svc),
            template: None,
            buffering: Some((parts, body, BytesMut::new())),
            settings: Some(settings),
            deadline,
            attempts: 0,
            previous_delay: Duration::ZERO,
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<RetryBody<B>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Buffering => {
                    let settings = this.settings.as_ref().expect("retryable").clone();
                    let (_, body, buf) = this.buffering.as_mut().expect("buffering");
                    let done = loop {
                        match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                            None => break true,
                            Some(Err(e)) => return Poll::Ready(Err(e.into())),
                            Some(Ok(frame)) => {
                                if let Ok(mut data) = frame.into_data() {
                                    buf.extend_from_slice(&data.copy_to_bytes(data.remaining()));
                                }
                                if buf.len() > settings.body_limit {
                                    break false;
                                }
                            }
                        }
                    };
                    let (parts, body, buf) = this.buffering.take().expect("buffering");
                    let mut svc = this.svc.take().expect("service");
                    if done {
                        let template = Template::new(parts, buf.freeze());
                        let future = svc.call(template.build());
                        *this.template = Some(template);
                        *this.svc = Some(svc);
                        *this.attempts = 1;
                        let timer = settings.attempt_timeout.map(tokio::time::sleep);
                        this.state.set(State::Calling { future, timer });
                    } else {
                        // Too large to replay: send what we read plus the rest, once.
                        let limit = settings.body_limit;
                        settings
                            .listeners
                            .emit_with(|| RetryEvent::BodyTooLarge { limit });
                        let req =
                            Request::from_parts(parts, RetryBody::stream(Some(buf.freeze()), body));
                        let future = svc.call(req);
                        *this.settings = None;
                        *this.attempts = 1;
                        this.state.set(State::Calling {
                            future,
                            timer: None,
                        });
                    }
                }
                StateProj::Ready => {
                    let svc = this.svc.as_mut().expect("service");
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    let req = this.template.as_ref().expect("template").build();
                    let future = svc.call(req);
                    *this.attempts += 1;
                    let timer = this
                        .settings
                        .as_ref()
                        .and_then(|s| s.attempt_timeout)
                        .map(tokio::time::sleep);
                    this.state.set(State::Calling { future, timer });
                }
                StateProj::Calling { future, timer } => {
                    let result: Result<Response<ResB>, BoxError> = match future.poll(cx) {
                        Poll::Ready(r) => r.map_err(Into::into),
                        Poll::Pending => match timer.as_pin_mut() {
                            Some(t) => {
                                if t.poll(cx).is_pending() {
                                    return Poll::Pending;
                                }
                                let after = this
                                    .settings
                                    .as_ref()
                                    .and_then(|s| s.attempt_timeout)
                                    .unwrap_or_default();
                                Err(Elapsed::new(after).into())
                            }
                            None => return Poll::Pending,
                        },
                    };
                    let Some(settings) = this.settings.as_ref() else {
                        return Poll::Ready(result);
                    };
                    let verdict = default_verdict(result.as_ref());
                    if let Some(b) = &settings.budget {
                        match verdict {
                            Verdict::Done if result.is_ok() => b.on_success(),
                            Verdict::Done => {}
                            _ => b.on_failure(),
                        }
                    }
                    let (delay, reason) = match verdict {
                        Verdict::Done => return Poll::Ready(result),
                        Verdict::Retry => {
                            let mut rng = settings
                                .rng
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            let d = settings.schedule.delay(
                                *this.attempts - 1,
                                *this.previous_delay,
                                &mut *rng,
                            );
                            (d, "backoff")
                        }
                        Verdict::RetryAfter(d) => {
                            if d > settings.schedule.cap {
                                // The server asks for longer than we are willing to wait.
                                return Poll::Ready(result);
                            }
                            (d, "server_delay")
                        }
                    };
                    if *this.attempts >= settings.max_attempts {
                        let attempts = *this.attempts;
                        settings
                            .listeners
                            .emit_with(|| RetryEvent::Exhausted { attempts });
                        return Poll::Ready(result);
                    }
                    if this.deadline.is_some_and(|d| d.remaining() <= delay) {
                        return Poll::Ready(result);
                    }
                    if let Some(b) = &settings.budget
                        && !b.try_retry()
                    {
                        settings.listeners.emit_with(|| RetryEvent::BudgetExhausted);
                        return Poll::Ready(result);
                    }
                    let n = *this.attempts + 1;
                    settings
                        .listeners
                        .emit_with(|| RetryEvent::Attempt { n, delay, reason });
                    drop(result);
                    *this.previous_delay = delay;
                    this.state.set(State::Sleeping {
                        sleep: tokio::time::sleep(delay),
                    });
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                }
            }
        }
    }
}
