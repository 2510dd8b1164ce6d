//! The retry layer around `reqwest::Client` (feature `reqwest`).
//!
//! `reqwest::Client` implements `Service<reqwest::Request>`; [`Retry`] implements it too, so
//! `RetryLayer::new().layer(client)` retries `reqwest::Request`s with the same rules as for
//! `http::Request`. Bodies are replayed with `Request::try_clone()`: a buffered body up to
//! the [`body_limit`](crate::RetryLayer::body_limit) is replayed; a larger one is sent once
//! ([`RetryEvent::BodyTooLarge`](crate::RetryEvent::BodyTooLarge)); a streaming body (which `try_clone` cannot copy) is sent
//! once as well. `reqwest::Request` carries no extensions, so there is no `Deadline`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use palisade_core::{BoxError, RequestParts};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::Retry;
use crate::attempts::{Attempts, Replay, Step};
use crate::policy::Predicate;

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
        let body_len = req
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map_or(0, |b| b.len() as u64);
        let host = shared.host_budget(RequestParts::authority(&req));
        let retryable = shared.admit(req.method(), req.headers(), body_len, host.as_deref());
        let template = if retryable { req.try_clone() } else { None };
        let mut attempts = Attempts::new(shared, true);
        attempts.host_budget = host;
        let fut = if template.is_none() {
            self.get_mut().call(req)
        } else {
            let clone = self.get_ref().clone();
            let mut svc = std::mem::replace(self.get_mut(), clone);
            let fut = svc.call(req);
            attempts.svc = Some(svc);
            fut
        };
        ReqwestFuture {
            step: Step::calling(fut),
            attempts,
            template: Template(template),
        }
    }
}

/// The request retries are cloned from (`None`: not retried).
struct Template(Option<reqwest::Request>);

impl Replay<reqwest::Request> for Template {
    fn can_retry(&self) -> bool {
        self.0.is_some()
    }

    fn next(&self, _attempts: u32) -> Option<reqwest::Request> {
        self.0.as_ref().and_then(reqwest::Request::try_clone)
    }
}

pin_project! {
    /// Response future of [`Retry`] for `reqwest::Request`.
    pub struct ReqwestFuture<S, P>
    where
        S: Service<reqwest::Request>,
    {
        #[pin]
        step: Step<S::Future>,
        attempts: Attempts<S, P>,
        template: Template,
    }
}

impl<S, P> fmt::Debug for ReqwestFuture<S, P>
where
    S: Service<reqwest::Request>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestFuture")
            .field("attempts", &self.attempts.sent)
            .finish_non_exhaustive()
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
        let this = self.project();
        this.attempts.poll(this.step, &*this.template, cx)
    }
}
