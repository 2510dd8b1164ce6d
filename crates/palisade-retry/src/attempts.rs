//! The retry loop, written once for every request type (`http::Request` with a replayed
//! body, `reqwest::Request`): call, time the attempt out, decide, back off, ready the
//! service again, rebuild the request, call again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use palisade_core::{BoxError, Deadline, Elapsed};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::backoff::BackoffState;
use crate::budget::Budget;
use crate::decide::{Next, decide};
use crate::layer::Shared;
use crate::policy::Predicate;
use crate::timer::BoxTimer;

/// How a request type is sent again.
pub(crate) trait Replay<Req> {
    /// Whether this request may be retried at all.
    fn can_retry(&self) -> bool;
    /// The request of the attempt after `attempts` attempts; `None` if it cannot be rebuilt.
    fn next(&self, attempts: u32) -> Option<Req>;
}

pin_project! {
    /// Where the loop stands.
    #[project = StepProj]
    pub(crate) enum Step<F> {
        Calling { #[pin] fut: F },
        Sleeping,
        Readying,
        // Also the state before the first call (a body still being read).
        Done,
    }
}

impl<F> Step<F> {
    pub(crate) fn calling(fut: F) -> Self {
        Self::Calling { fut }
    }
}

/// The loop's state apart from the attempt in flight.
pub(crate) struct Attempts<S, P> {
    pub(crate) shared: Arc<Shared<P>>,
    /// The readied service for the first attempt, then a clone made ready per retry.
    pub(crate) svc: Option<S>,
    pub(crate) sent: u32,
    pub(crate) deadline: Option<Deadline>,
    /// The request host's budget, when budgets are per host (else the shared one applies).
    pub(crate) host_budget: Option<Arc<dyn Budget>>,
    backoff: BackoffState,
    /// The per-attempt timeout, then the backoff.
    timer: BoxTimer,
}

impl<S, P> Attempts<S, P> {
    /// The state of a request whose first attempt is (about to be) sent; arms the
    /// per-attempt timeout if `calling`.
    pub(crate) fn new(shared: Arc<Shared<P>>, calling: bool) -> Self {
        let timer = if calling {
            BoxTimer::new(shared.per_attempt_timeout)
        } else {
            BoxTimer::default()
        };
        Self {
            shared,
            svc: None,
            sent: 0,
            deadline: None,
            host_budget: None,
            backoff: BackoffState::new(),
            timer,
        }
    }

    /// Starts an attempt made outside the loop (the first, once its body was read).
    pub(crate) fn start<F>(&mut self, mut step: Pin<&mut Step<F>>, fut: F) {
        step.set(Step::Calling { fut });
        self.timer.arm(self.shared.per_attempt_timeout);
    }

    /// Drives the loop to the final result.
    #[inline]
    pub(crate) fn poll<Req, R>(
        &mut self,
        mut step: Pin<&mut Step<S::Future>>,
        replay: &R,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Response, BoxError>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
        P: Predicate<S::Response>,
        R: Replay<Req>,
    {
        loop {
            match step.as_mut().project() {
                StepProj::Calling { fut } => {
                    let result = match fut.poll(cx) {
                        Poll::Ready(r) => r.map_err(Into::into),
                        Poll::Pending => {
                            if !self.timer.fired(cx) {
                                return Poll::Pending;
                            }
                            let t = self.shared.per_attempt_timeout.unwrap_or_default();
                            Err(Elapsed::new(t).into())
                        }
                    };
                    // Drop the attempt (and its timer) before deciding.
                    step.set(Step::Done);
                    self.timer.arm(None);
                    self.sent += 1;
                    let budget = self
                        .host_budget
                        .as_deref()
                        .or(self.shared.budget.as_deref());
                    let next = decide(
                        &self.shared,
                        budget,
                        self.sent,
                        &mut self.backoff,
                        self.deadline,
                        replay.can_retry(),
                        result.as_ref(),
                    );
                    match next {
                        Next::Return => return Poll::Ready(result),
                        Next::Retry(delay) => {
                            drop(result);
                            step.set(Step::Sleeping);
                            self.timer.arm(Some(delay));
                        }
                    }
                }
                StepProj::Sleeping => {
                    ready!(self.timer.poll_sleep(cx));
                    self.timer.arm(None);
                    step.set(Step::Readying);
                }
                StepProj::Readying => {
                    let svc = self.svc.as_mut().expect("retry service");
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        step.set(Step::Done);
                        return Poll::Ready(Err(e.into()));
                    }
                    let Some(req) = replay.next(self.sent) else {
                        // Unreachable: `HeadCopy::new` only keeps heads that parse back, and
                        // a reqwest request is kept only if `try_clone` succeeded.
                        step.set(Step::Done);
                        return Poll::Ready(Err("retry: the request could not be rebuilt".into()));
                    };
                    let fut = svc.call(req);
                    step.set(Step::Calling { fut });
                    self.timer.arm(self.shared.per_attempt_timeout);
                }
                StepProj::Done => panic!("retry future polled after completion"),
            }
        }
    }
}
