//! Response future of [`CircuitBreaker`](crate::CircuitBreaker).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use palisade_core::{BoxError, CircuitOpen, Classifier, Outcome};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::machine::Permit;
use crate::shared::Breaker;

/// Records the call's outcome, or frees its slot if the future is dropped first.
pub(crate) struct Guard {
    breaker: Arc<Breaker>,
    permit: Permit,
    started: Instant,
    done: bool,
}

impl Guard {
    pub(crate) fn new(breaker: Arc<Breaker>, permit: Permit, started: Instant) -> Self {
        Self {
            breaker,
            permit,
            started,
            done: false,
        }
    }
    fn finish(&mut self, outcome: Option<bool>) {
        self.done = true;
        if self.permit == Permit::Unrecorded {
            return; // DISABLED records nothing, so it needs no clock read either
        }
        // One clock read gives both the duration and the recording time.
        self.breaker
            .record(self.permit, outcome, self.started, Instant::now());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.cancel(self.permit);
        }
    }
}

pin_project! {
    /// Response future of [`CircuitBreaker`](crate::CircuitBreaker). No allocation.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called { #[pin] future: F, guard: Guard, classifier: C },
        Rejected { error: Option<CircuitOpen> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(future: F, guard: Guard, classifier: C) -> Self {
        Self {
            kind: Kind::Called {
                future,
                guard,
                classifier,
            },
        }
    }
    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classifier<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                guard,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                let outcome = match classifier.classify(result.as_ref()) {
                    Outcome::Success => Some(false),
                    Outcome::Failure => Some(true),
                    Outcome::Ignored => None,
                };
                guard.finish(outcome);
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion")
                .into())),
        }
    }
}

pin_project! {
    /// Response future of [`KeyedCircuitBreaker`](crate::KeyedCircuitBreaker).
    pub struct KeyedResponseFuture<F, C> {
        #[pin]
        kind: KeyedKind<F, C>,
    }
}

pin_project! {
    #[project = KeyedKindProj]
    enum KeyedKind<F, C> {
        Inner { #[pin] future: ResponseFuture<F, C> },
        BadKey { error: Option<palisade_core::KeyError> },
    }
}

impl<F, C> KeyedResponseFuture<F, C> {
    pub(crate) fn inner(future: ResponseFuture<F, C>) -> Self {
        Self {
            kind: KeyedKind::Inner { future },
        }
    }
    pub(crate) fn bad_key(error: palisade_core::KeyError) -> Self {
        Self {
            kind: KeyedKind::BadKey { error: Some(error) },
        }
    }
}

impl<F, C> fmt::Debug for KeyedResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for KeyedResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classifier<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KeyedKindProj::Inner { future } => future.poll(cx),
            KeyedKindProj::BadKey { error } => Poll::Ready(Err(error
                .take()
                .expect("KeyedResponseFuture polled after completion")
                .into())),
        }
    }
}
