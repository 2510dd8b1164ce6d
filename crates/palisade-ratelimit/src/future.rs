//! Response future of [`RateLimit`](crate::RateLimit).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use palisade_core::{BoxError, StoreUnavailable};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::events::{FailAction, RateLimitEvent};
use crate::gcra::RateLimitDecision;
use crate::headers::ResponseFields;
use crate::layer::Shared;
use crate::quota::QuotaSet;
use crate::service::{Step, step};
use palisade_core::request::{Http, ResponseMode};

/// A decision by a remote store (Redis): the decision, or the error text.
pub(crate) type DecideFuture =
    Pin<Box<dyn Future<Output = Result<RateLimitDecision, String>> + Send + 'static>>;

/// What a remote decision needs once it arrives.
pub(crate) struct Remote {
    pub(crate) shared: Arc<Shared>,
    pub(crate) set: QuotaSet,
    pub(crate) hash: u64,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) fail: FailAction,
}

/// A request held back before the inner service is called: while it waits for its turn
/// (wait mode) or for Redis's decision. Boxed, so that the future of a request that goes
/// straight through (the usual case) does not carry a request and a service inline.
struct Held<S, Req> {
    svc: S,
    req: Req,
    headers: Option<ResponseFields>,
}

impl<S, Req> Held<S, Req> {
    fn call(self) -> (S::Future, Option<ResponseFields>)
    where
        S: Service<Req>,
    {
        let Held {
            mut svc,
            req,
            headers,
        } = self;
        (svc.call(req), headers)
    }
}

pin_project! {
    /// A held request and its timer, in one allocation.
    struct Parked<S, Req> {
        #[pin]
        sleep: Sleep,
        held: Option<Held<S, Req>>,
    }
}

impl<S, Req> Parked<S, Req> {
    fn new(wait: Duration, held: Held<S, Req>) -> Pin<Box<Self>> {
        Box::pin(Self {
            sleep: tokio::time::sleep(wait),
            held: Some(held),
        })
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req> {
        Called { #[pin] future: F, headers: Option<ResponseFields> },
        Waiting { parked: Pin<Box<Parked<S, Req>>> },
        Deciding {
            future: DecideFuture,
            remote: Option<Box<(Remote, Held<S, Req>)>>,
        },
        Rejected { error: Option<BoxError> },
    }
}

pin_project! {
    /// Response future of [`RateLimit`](crate::RateLimit): refused at once, held back
    /// (wait mode), waiting for Redis, or running the inner service.
    pub struct ResponseFuture<F, S, Req, M = Http> {
        #[pin]
        kind: Kind<F, S, Req>,
        mode: PhantomData<fn() -> M>,
    }
}

impl<F, S, Req, M> fmt::Debug for ResponseFuture<F, S, Req, M> {
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

impl<F, S, Req, M> ResponseFuture<F, S, Req, M> {
    pub(crate) fn called(future: F, headers: Option<ResponseFields>) -> Self {
        Self {
            kind: Kind::Called { future, headers },
            mode: PhantomData,
        }
    }
    pub(crate) fn rejected(error: BoxError) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
            mode: PhantomData,
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
                parked: Parked::new(wait, Held { svc, req, headers }),
            },
            mode: PhantomData,
        }
    }
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn deciding(future: DecideFuture, remote: Remote, svc: S, req: Req) -> Self {
        let held = Held {
            svc,
            req,
            headers: None,
        };
        Self {
            kind: Kind::Deciding {
                future,
                remote: Some(Box::new((remote, held))),
            },
            mode: PhantomData,
        }
    }
}

impl<F, S, Req, Res, E, M> Future for ResponseFuture<F, S, Req, M>
where
    F: Future<Output = Result<Res, E>>,
    S: Service<Req, Future = F, Error = E>,
    M: ResponseMode<Res>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Called { future, headers } => {
                    let mut res = ready!(future.poll(cx)).map_err(Into::into)?;
                    if let Some(h) = headers.take()
                        && let Some(map) = M::headers_mut(&mut res)
                    {
                        h.apply(map);
                    }
                    return Poll::Ready(Ok(res));
                }
                KindProj::Waiting { parked } => {
                    let parked = parked.as_mut().project();
                    ready!(parked.sleep.poll(cx));
                    let held = parked.held.take().expect("request held while waiting");
                    let (future, headers) = held.call();
                    kind.set(Kind::Called { future, headers });
                }
                KindProj::Deciding { future, remote } => {
                    let result = ready!(future.as_mut().poll(cx));
                    let (r, mut held) = *remote.take().expect("remote context set with Deciding");
                    let next = match result {
                        Ok(d) => step(&r.shared, &r.set, r.hash, &d),
                        Err(error) => {
                            r.shared
                                .listeners
                                .emit_named(|instance| RateLimitEvent::StoreFailed {
                                    instance,
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
                            held.headers = headers;
                            let (future, headers) = held.call();
                            kind.set(Kind::Called { future, headers });
                        }
                        Step::Wait(wait, headers) => {
                            held.headers = headers;
                            kind.set(Kind::Waiting {
                                parked: Parked::new(wait, held),
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
