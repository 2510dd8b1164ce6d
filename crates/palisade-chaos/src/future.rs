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
        kind: Outer<F, S, Req>,
    }
}

pin_project! {
    // Two states only: the passthrough future is the inner one plus a tag, and everything a
    // fault needs lives behind one box that exists only when a fault fired.
    #[project = OuterProj]
    enum Outer<F, S, Req> {
        Passthrough { #[pin] fut: F },
        Faulted { faulted: Pin<Box<Faulted<F, S, Req>>> },
    }
}

pin_project! {
    struct Faulted<F, S, Req> {
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
        Delayed { sleep: Pin<Box<Sleep>>, inner: Option<S>, req: Option<Req> },
        Answer { sleep: Option<Pin<Box<Sleep>>>, abort: Option<Response<Full<Bytes>>> },
    }
}

impl<F, S, Req> std::fmt::Debug for ResponseFuture<F, S, Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ResponseFuture");
        match &self.kind {
            Outer::Passthrough { .. } => d.field("faulted", &false),
            Outer::Faulted { faulted } => d
                .field("faulted", &faulted.guard.is_some())
                .field("throttle", &faulted.throttle),
        };
        d.finish_non_exhaustive()
    }
}

impl<F, S, Req> ResponseFuture<F, S, Req> {
    #[inline]
    pub(crate) fn passthrough(fut: F) -> Self {
        Self {
            kind: Outer::Passthrough { fut },
        }
    }
    fn faulted(kind: Kind<F, S, Req>, throttle: Option<NonZeroU64>, guard: ActiveGuard) -> Self {
        Self {
            kind: Outer::Faulted {
                faulted: Box::pin(Faulted {
                    kind,
                    throttle,
                    guard: Some(guard),
                }),
            },
        }
    }
    pub(crate) fn calling(fut: F, throttle: Option<NonZeroU64>, guard: ActiveGuard) -> Self {
        Self::faulted(Kind::Calling { fut }, throttle, guard)
    }
    pub(crate) fn answer(
        delay: Option<Duration>,
        abort: Option<Response<Full<Bytes>>>,
        guard: ActiveGuard,
    ) -> Self {
        let sleep = delay.map(|d| Box::pin(tokio::time::sleep(d)));
        Self::faulted(Kind::Answer { sleep, abort }, None, guard)
    }
    pub(crate) fn delayed(
        delay: Option<Duration>,
        inner: S,
        req: Req,
        throttle: Option<NonZeroU64>,
        guard: ActiveGuard,
    ) -> Self {
        let kind = Kind::Delayed {
            sleep: Box::pin(tokio::time::sleep(delay.unwrap_or_default())),
            inner: Some(inner),
            req: Some(req),
        };
        Self::faulted(kind, throttle, guard)
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
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            OuterProj::Passthrough { fut } => fut
                .poll(cx)
                .map(|res| Ok(res.map_err(Into::into)?.map(FaultBody::inner))),
            OuterProj::Faulted { faulted } => faulted.as_mut().poll(cx),
        }
    }
}

impl<F, E, S, Req, B> Future for Faulted<F, S, Req>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    S: Service<Req, Future = F, Response = Response<B>, Error = E>,
{
    type Output = Result<Response<FaultBody<B>>, BoxError>;

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
                KindProj::Answer { sleep, abort } => {
                    if let Some(s) = sleep.as_mut() {
                        ready!(s.as_mut().poll(cx));
                    }
                    *this.guard = None;
                    return Poll::Ready(match abort.take() {
                        Some(res) => Ok(res.map(FaultBody::full)),
                        None => Err(FaultInjected.into()),
                    });
                }
                KindProj::Delayed { sleep, inner, req } => {
                    ready!(sleep.as_mut().poll(cx));
                    let (Some(mut svc), Some(req)) = (inner.take(), req.take()) else {
                        unreachable!("polled after the delay was spent");
                    };
                    let fut = svc.call(req);
                    self.as_mut().project().kind.set(Kind::Calling { fut });
                }
            }
        }
    }
}
