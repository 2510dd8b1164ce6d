//! The retry layer around `reqwest::Client` (feature `reqwest`).
//!
//! `reqwest::Client` implements `Service<reqwest::Request>`; [`Retry`] implements it too, so
//! `RetryLayer::new().layer(client)` retries `reqwest::Request`s with the same rules as for
//! `http::Request`. Bodies are replayed with `Request::try_clone()`: a buffered body up to
//! the [`body_limit`](crate::RetryLayer::body_limit) is replayed; a larger one is sent once
//! ([`RetryEvent::BodyTooLarge`]); a streaming body (which `try_clone` cannot copy) is sent
//! once as well. `reqwest::Request` carries no extensions, so there is no `Deadline`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use palisade_core::BoxError;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::Retry;
use crate::backoff::BackoffState;
use crate::events::RetryEvent;
use crate::future::{BoxTimer, Next, decide};
use crate::layer::Shared;
use crate::policy::{IDEMPOTENCY_KEY, Predicate, is_idempotent};

impl<S, P> Service<reqwest::Request> for Retry<S, P>
where
    S: Service<reqwest::Request> + Clone,
    S::Error: Into<BoxError>,
    P: Predicate<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ReqwestFuture<S, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.get_mut().poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: reqwest::Request) -> Self::Future {
        let shared = self.shared().clone();
        if let Some(b) = &shared.budget {
            b.deposit();
        }
        let mut retryable = shared.max_attempts > 1
            && (shared.retry_unsafe
                || is_idempotent(req.method())
                || req.headers().contains_key(IDEMPOTENCY_KEY));
        if retryable
            && req
                .body()
                .and_then(reqwest::Body::as_bytes)
                .is_some_and(|b| b.len() > shared.body_limit)
        {
            let limit = shared.body_limit;
            shared
                .listeners
                .emit_named(|instance| RetryEvent::BodyTooLarge { instance, limit });
            retryable = false;
        }
        let template = if retryable { req.try_clone() } else { None };
        let timer = BoxTimer::new(shared.per_attempt_timeout);
        if template.is_none() {
            let fut = self.get_mut().call(req);
            return ReqwestFuture {
                state: RState::Calling { fut },
                timer,
                shared,
                svc: None,
                template: None,
                attempts: 0,
                backoff: BackoffState::new(),
            };
        }
        let clone = self.get_ref().clone();
        let mut svc = std::mem::replace(self.get_mut(), clone);
        let fut = svc.call(req);
        ReqwestFuture {
            state: RState::Calling { fut },
            timer,
            shared,
            svc: Some(svc),
            template,
            attempts: 0,
            backoff: BackoffState::new(),
        }
    }
}

pin_project! {
    /// Response future of [`Retry`] for `reqwest::Request`.
    pub struct ReqwestFuture<S, P>
    where
        S: Service<reqwest::Request>,
    {
        #[pin]
        state: RState<S::Future>,
        timer: BoxTimer,
        shared: Arc<Shared<P>>,
        svc: Option<S>,
        template: Option<reqwest::Request>,
        attempts: u32,
        backoff: BackoffState,
    }
}

impl<S, P> fmt::Debug for ReqwestFuture<S, P>
where
    S: Service<reqwest::Request>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

pin_project! {
    #[project = RStateProj]
    enum RState<F> {
        Calling { #[pin] fut: F },
        Sleeping,
        Readying,
        Done,
    }
}

impl<S, P> Future for ReqwestFuture<S, P>
where
    S: Service<reqwest::Request>,
    S::Error: Into<BoxError>,
    P: Predicate<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                RStateProj::Calling { fut } => {
                    let result = match fut.poll(cx) {
                        Poll::Ready(r) => r.map_err(Into::into),
                        Poll::Pending => {
                            if !this.timer.fired(cx) {
                                return Poll::Pending;
                            }
                            let t = this.shared.per_attempt_timeout.unwrap_or_default();
                            Err(palisade_core::Elapsed::new(t).into())
                        }
                    };
                    this.state.set(RState::Done);
                    this.timer.arm(None);
                    *this.attempts += 1;
                    match decide(
                        this.shared,
                        *this.attempts,
                        this.backoff,
                        None,
                        this.template.is_some(),
                        result.as_ref(),
                    ) {
                        Next::Return => return Poll::Ready(result),
                        Next::Retry(delay) => {
                            drop(result);
                            this.state.set(RState::Sleeping);
                            this.timer.arm(Some(delay));
                        }
                    }
                }
                RStateProj::Sleeping => {
                    ready!(this.timer.poll_sleep(cx));
                    this.timer.arm(None);
                    this.state.set(RState::Readying);
                }
                RStateProj::Readying => {
                    let svc = this.svc.as_mut().expect("retry service");
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        this.state.set(RState::Done);
                        return Poll::Ready(Err(e.into()));
                    }
                    let req = this
                        .template
                        .as_ref()
                        .and_then(reqwest::Request::try_clone)
                        .expect("replayable request");
                    let fut = svc.call(req);
                    this.state.set(RState::Calling { fut });
                    this.timer.arm(this.shared.per_attempt_timeout);
                }
                RStateProj::Done => panic!("retry ReqwestFuture polled after completion"),
            }
        }
    }
}
