//! The retry layer around services of any request type (a broker producer, a database
//! call, a `Service<u64>`): the same loop, backoff, budget, predicate and events as for
//! HTTP, with the request sent again by [`ReplayRequest`] instead of body replay.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use palisade_core::BoxError;
use palisade_core::request::AnyRequest;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::Retry;
use crate::attempts::{Attempts, Replay, Step};
use crate::policy::Predicate;

/// A request that can be sent again: [`replay`](Self::replay) makes the copy a retry sends.
///
/// Every `Clone` type is one (its replay is a clone). Implement it for a request type of
/// your own that is not `Clone`, or return `None` for requests that must not be sent twice
/// (they are then sent once and never retried).
///
/// ```
/// use palisade_retry::ReplayRequest;
///
/// /// A query whose cursor cannot be copied: only the statement is replayed.
/// struct Query { sql: String, cursor: Option<std::fs::File> }
///
/// impl ReplayRequest for Query {
///     fn replay(&self) -> Option<Self> {
///         self.cursor.is_none().then(|| Query { sql: self.sql.clone(), cursor: None })
///     }
/// }
/// let q = Query { sql: "select 1".into(), cursor: None };
/// assert_eq!(q.replay().unwrap().sql, "select 1");
/// assert_eq!(7_u64.replay(), Some(7)); // any Clone type
/// ```
pub trait ReplayRequest: Sized {
    /// The request a retry sends, or `None` if this one cannot be sent again.
    fn replay(&self) -> Option<Self>;
}

impl<T: Clone> ReplayRequest for T {
    #[inline]
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<S, P, R> Service<R> for Retry<S, P, AnyRequest>
where
    S: Service<R> + Clone,
    S::Error: Into<BoxError>,
    P: Predicate<S::Response>,
    R: ReplayRequest,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AnyFuture<S, P, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.get_mut().poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: R) -> Self::Future {
        let shared = self.shared().clone();
        let template = if shared.admit_any() {
            req.replay()
        } else {
            None
        };
        let mut attempts = Attempts::new(shared, true);
        let fut = if template.is_none() {
            self.get_mut().call(req)
        } else {
            // The readied service sends the first attempt; a clone stays behind, and the
            // future keeps the readied one for retries (made ready again before each).
            let clone = self.get_ref().clone();
            let mut svc = std::mem::replace(self.get_mut(), clone);
            let fut = svc.call(req);
            attempts.svc = Some(svc);
            fut
        };
        AnyFuture {
            step: Step::calling(fut),
            attempts,
            template: Template(template),
        }
    }
}

/// The request retries are replayed from (`None`: not retried).
struct Template<R>(Option<R>);

impl<R: ReplayRequest> Replay<R> for Template<R> {
    #[inline]
    fn can_retry(&self) -> bool {
        self.0.is_some()
    }

    fn next(&self, _attempts: u32) -> Option<R> {
        self.0.as_ref().and_then(ReplayRequest::replay)
    }
}

pin_project! {
    /// Response future of [`Retry`] for any request type
    /// ([`RetryLayer::any_request`](crate::RetryLayer::any_request)).
    pub struct AnyFuture<S, P, R>
    where
        S: Service<R>,
    {
        #[pin]
        step: Step<S::Future>,
        attempts: Attempts<S, P>,
        template: Template<R>,
    }
}

impl<S, P, R> fmt::Debug for AnyFuture<S, P, R>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyFuture")
            .field("attempts", &self.attempts.sent)
            .finish_non_exhaustive()
    }
}

impl<S, P, R> Future for AnyFuture<S, P, R>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    P: Predicate<S::Response>,
    R: ReplayRequest,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.attempts.poll(this.step, &*this.template, cx)
    }
}
