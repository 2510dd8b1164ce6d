//! The response future of [`Fault`](crate::Fault).

use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use palisade_core::BoxError;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::body::FaultBody;
use crate::error::FaultInjected;
use crate::layer::ActiveGuard;

pin_project! {
    /// Response future of [`Fault`](crate::Fault).
    pub struct ResponseFuture<F, S, Req> {
        #[pin]
        kind: Kind<F, S, Req>,
        throttle: Option<NonZeroU64>,
        guard: Option<ActiveGuard>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req> {
        Calling { #[pin] fut: F },
        // Boxed so that the common (passthrough) future stays as small as the inner one: these
        // states only exist when a fault fired.
        Delayed { delayed: Box<Delayed<S, Req>> },
        Answer { answer: Box<Answer> },
    }
}

struct Delayed<S, Req> {
    sleep: Pin<Box<Sleep>>,
    inner: Option<S>,
    req: Option<Req>,
}

struct Answer {
    sleep: Option<Pin<Box<Sleep>>>,
    abort: Option<Response<Full<Bytes>>>,
}

impl<F, S, Req> std::fmt::Debug for ResponseFuture<F, S, Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("throttle", &self.throttle)
            .field("faulted", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, S, Req> ResponseFuture<F, S, Req> {
    #[inline]
    pub(crate) fn passthrough(fut: F) -> Self {
        Self {
            kind: Kind::Calling { fut },
            throttle: None,
            guard: None,
        }
    }
    pub(crate) fn calling(fut: F, throttle: Option<NonZeroU64>, guard: ActiveGuard) -> Self {
        Self {
            kind: Kind::Calling { fut },
            throttle,
            guard: Some(guard),
        }
    }
    pub(crate) fn answer(
        delay: Option<Duration>,
        abort: Option<Response<Full<Bytes>>>,
        guard: ActiveGuard,
    ) -> Self {
        Self {
            kind: Kind::Answer {
                answer: Box::new(Answer {
                    sleep: delay.map(|d| Box::pin(tokio::time::sleep(d))),
                    abort,
                }),
            },
            throttle: None,
            guard: Some(guard),
        }
    }
    pub(crate) fn delayed(
        delay: Option<Duration>,
        inner: S,
        req: Req,
        throttle: Option<NonZeroU64>,
        guard: ActiveGuard,
    ) -> Self {
        Self {
            kind: Kind::Delayed {
                delayed: Box::new(Delayed {
                    sleep: Box::pin(tokio::time::sleep(delay.unwrap_or_default())),
                    inner: Some(inner),
                    req: Some(req),
                }),
            },
            throttle,
            guard: Some(guard),
        }
    }
}

impl<F, E, S, Req, B> Future for ResponseFuture<F, S, Req>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    S: Service<Req, Future = F, Response = Response<B>, Error = E>,
{
    type Output = Result<Response<FaultBody<B>>, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            match this.kind.project() {
                KindProj::Calling { fut } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                    // A throttled body keeps the in-flight slot until it is done; any other
                    // faulted request releases it here.
                    let guard = this.guard.take();
                    return Poll::Ready(Ok(match *this.throttle {
                        Some(rate) => res.map(|b| FaultBody::throttled(b, rate, guard)),
                        None => res.map(FaultBody::inner),
                    }));
                }
                KindProj::Answer { answer } => {
                    let answer = answer.as_mut();
                    if let Some(s) = answer.sleep.as_mut() {
                        ready!(s.as_mut().poll(cx));
                    }
                    *this.guard = None;
                    return Poll::Ready(match answer.abort.take() {
                        Some(res) => Ok(res.map(FaultBody::full)),
                        None => Err(FaultInjected.into()),
                    });
                }
                KindProj::Delayed { delayed } => {
                    let delayed = delayed.as_mut();
                    ready!(delayed.sleep.as_mut().poll(cx));
                    let (Some(mut svc), Some(req)) = (delayed.inner.take(), delayed.req.take())
                    else {
                        unreachable!("polled after the delay was spent");
                    };
                    let fut = svc.call(req);
                    self.as_mut().project().kind.set(Kind::Calling { fut });
                }
            }
        }
    }
}
