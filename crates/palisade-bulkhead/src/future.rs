//! Response future of [`Bulkhead`](crate::Bulkhead).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use palisade_core::{BoxError, BulkheadFull};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::admission::{Admission, Permit, Waiter};
use crate::events::{BulkheadEvent, RejectReason};
use crate::release::Release;

/// A place in the queue; dropping it gives the place (or a slot granted meanwhile) back.
#[derive(Debug)]
pub(crate) struct WaitGuard {
    admission: Arc<Admission>,
    waiter: Option<Arc<Waiter>>,
}

impl WaitGuard {
    pub(crate) fn new(admission: Arc<Admission>, waiter: Arc<Waiter>) -> Self {
        Self {
            admission,
            waiter: Some(waiter),
        }
    }
    pub(crate) fn is_granted(&self) -> bool {
        self.waiter.as_ref().is_some_and(|w| w.is_granted())
    }
    pub(crate) fn register(&self, waker: &Waker) {
        if let Some(w) = &self.waiter {
            w.register(waker);
        }
    }
    /// The slot, if it has been granted.
    pub(crate) fn try_take(&mut self) -> Option<Permit> {
        let w = self.waiter.as_ref()?;
        if !w.is_granted() {
            return None;
        }
        let w = self.waiter.take()?;
        Some(self.admission.take_grant(&w))
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.admission.abandon(&w);
        }
    }
}

pin_project! {
    /// Response future of [`Bulkhead`](crate::Bulkhead): running with a slot, waiting in the
    /// queue, or rejected. Allocates only when it has to queue (its
    /// waiter and its boxed waiting state).
    pub struct ResponseFuture<S: Service<R>, R, Rel> {
        #[pin]
        kind: Kind<S, R>,
        _release: std::marker::PhantomData<fn() -> Rel>,
    }
}

pin_project! {
    /// A queued request: boxed, so the (rare) waiting state does not make every response
    /// future as large as a request plus a timer.
    #[project = ParkedProj]
    struct Parked<S, R> {
        guard: WaitGuard,
        #[pin] sleep: Sleep,
        inner: Option<S>,
        req: Option<R>,
        lane: usize,
        wait: Duration,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S: Service<R>, R> {
        Running { #[pin] future: S::Future, permit: Option<Permit> },
        Waiting { state: Pin<Box<Parked<S, R>>> },
        Rejected { error: Option<BoxError> },
    }
}

impl<S: Service<R>, R, Rel> ResponseFuture<S, R, Rel> {
    pub(crate) fn running(future: S::Future, permit: Permit) -> Self {
        Self {
            kind: Kind::Running {
                future,
                permit: Some(permit),
            },
            _release: std::marker::PhantomData,
        }
    }
    pub(crate) fn waiting(
        guard: WaitGuard,
        sleep: Sleep,
        inner: S,
        req: R,
        lane: usize,
        wait: Duration,
    ) -> Self {
        Self {
            kind: Kind::Waiting {
                state: Box::pin(Parked {
                    guard,
                    sleep,
                    inner: Some(inner),
                    req: Some(req),
                    lane,
                    wait,
                }),
            },
            _release: std::marker::PhantomData,
        }
    }
    pub(crate) fn rejected(error: BoxError) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
            _release: std::marker::PhantomData,
        }
    }
}

impl<S: Service<R>, R, Rel> fmt::Debug for ResponseFuture<S, R, Rel> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, R, Rel> Future for ResponseFuture<S, R, Rel>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    Rel: Release<S::Response>,
{
    type Output = Result<Rel::Output, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Running { future, permit } => {
                    let res = ready!(future.poll(cx)).map_err(Into::into)?;
                    let permit = permit.take().expect("polled after completion");
                    return Poll::Ready(Ok(Rel::attach(res, permit)));
                }
                KindProj::Waiting { state } => {
                    let ParkedProj {
                        guard,
                        sleep,
                        inner,
                        req,
                        lane,
                        wait,
                    } = state.as_mut().project();
                    let permit = if let Some(p) = guard.try_take() {
                        p
                    } else {
                        guard.register(cx.waker());
                        if let Some(p) = guard.try_take() {
                            p
                        } else if sleep.poll(cx).is_ready() {
                            let lane = *lane;
                            let error = BulkheadFull::new(Some(*wait));
                            // Give the place back; a slot granted just now is passed on.
                            if let Some(w) = guard.waiter.take() {
                                guard.admission.abandon(&w);
                            }
                            guard.admission.listeners.emit_named(|instance| {
                                BulkheadEvent::Rejected {
                                    instance,
                                    lane,
                                    reason: RejectReason::QueueTimeout,
                                }
                            });
                            return Poll::Ready(Err(error.into()));
                        } else {
                            return Poll::Pending;
                        }
                    };
                    // The service was readied before it was moved here (tower's clone rule).
                    let mut svc = inner.take().expect("polled after completion");
                    let future = svc.call(req.take().expect("polled after completion"));
                    kind.set(Kind::Running {
                        future,
                        permit: Some(permit),
                    });
                }
                KindProj::Rejected { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}
