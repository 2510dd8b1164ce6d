//! Response future of [`RateLimit`](crate::RateLimit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use palisade_core::{BoxError, StoreUnavailable};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::events::{FailAction, RateLimitEvent};
use crate::gcra::Decision;
use crate::headers::ResponseFields;
use crate::layer::Shared;
use crate::quota::QuotaSet;
use crate::service::{Step, step};
use palisade_core::ResponseParts;

/// A decision by a remote store (Redis): the decision, or the error text.
pub(crate) type DecideFuture =
    Pin<Box<dyn Future<Output = Result<Decision, String>> + Send + 'static>>;

/// What a remote decision needs once it arrives.
pub(crate) struct Remote {
    pub(crate) shared: Arc<Shared>,
    pub(crate) set: QuotaSet,
    pub(crate) hash: u64,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) fail: FailAction,
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Waiting { #[pin] sleep: Sleep },
        Deciding { future: DecideFuture },
        Rejected { error: Option<BoxError> },
    }
}

pin_project! {
    /// Response future of [`RateLimit`](crate::RateLimit): refused at once, held back
    /// (wait mode), waiting for Redis, or running the inner service.
    pub struct ResponseFuture<F, S, Req> {
        #[pin]
        kind: Kind<F>,
        svc: Option<S>,
        req: Option<Req>,
        headers: Option<ResponseFields>,
        remote: Option<Box<Remote>>,
    }
}

impl<F, S, Req> fmt::Debug for ResponseFuture<F, S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Waiting { .. } => "waiting",
            Kind::Deciding { .. } => "deciding",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<F, S, Req> ResponseFuture<F, S, Req> {
    pub(crate) fn called(future: F, headers: Option<ResponseFields>) -> Self {
        Self {
            kind: Kind::Called { future },
            svc: None,
            req: None,
            headers,
            remote: None,
        }
    }
    pub(crate) fn rejected(error: BoxError) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
            svc: None,
            req: None,
            headers: None,
            remote: None,
        }
    }
    pub(crate) fn waiting(
        wait: Duration,
        svc: S,
        req: Req,
        headers: Option<ResponseFields>,
    ) -> Self {
        Self {
            kind: Kind::Waiting {
                sleep: tokio::time::sleep(wait),
            },
            svc: Some(svc),
            req: Some(req),
            headers,
            remote: None,
        }
    }
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn deciding(future: DecideFuture, remote: Remote, svc: S, req: Req) -> Self {
        Self {
            kind: Kind::Deciding { future },
            svc: Some(svc),
            req: Some(req),
            headers: None,
            remote: Some(Box::new(remote)),
        }
    }
}

impl<F, S, Req, Res, E> Future for ResponseFuture<F, S, Req>
where
    F: Future<Output = Result<Res, E>>,
    S: Service<Req, Future = F, Error = E>,
    Res: ResponseParts,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.kind.as_mut().project() {
                KindProj::Called { future } => {
                    let mut res = ready!(future.poll(cx)).map_err(Into::into)?;
                    if let Some(h) = this.headers.take() {
                        h.apply(res.headers_mut());
                    }
                    return Poll::Ready(Ok(res));
                }
                KindProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    let future = call(this.svc, this.req);
                    this.kind.set(Kind::Called { future });
                }
                KindProj::Deciding { future } => {
                    let result = ready!(future.as_mut().poll(cx));
                    let r = this
                        .remote
                        .take()
                        .expect("remote context set with Deciding");
                    let next = match result {
                        Ok(d) => step(&r.shared, &r.set, r.hash, &d),
                        Err(error) => {
                            r.shared
                                .listeners
                                .emit_with(|| RateLimitEvent::StoreFailed {
                                    action: r.fail,
                                    error: error.clone(),
                                });
                            match r.fail {
                                FailAction::Open => Step::Call(None),
                                FailAction::Closed => {
                                    Step::Reject(Box::new(StoreUnavailable::new(None)))
                                }
                                FailAction::Local => {
                                    let d =
                                        r.shared.store.decide(r.hash, r.set.quotas(), r.max_wait);
                                    step(&r.shared, &r.set, r.hash, &d)
                                }
                            }
                        }
                    };
                    match next {
                        Step::Call(headers) => {
                            *this.headers = headers;
                            let future = call(this.svc, this.req);
                            this.kind.set(Kind::Called { future });
                        }
                        Step::Wait(wait, headers) => {
                            *this.headers = headers;
                            this.kind.set(Kind::Waiting {
                                sleep: tokio::time::sleep(wait),
                            });
                        }
                        Step::Reject(e) => return Poll::Ready(Err(e)),
                    }
                }
                KindProj::Rejected { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}

fn call<S: Service<Req>, Req>(svc: &mut Option<S>, req: &mut Option<Req>) -> S::Future {
    let mut svc = svc.take().expect("service held while waiting");
    svc.call(req.take().expect("request held while waiting"))
}
