//! [`HedgeFuture`]: the copies of one request in flight, and which answer wins.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use palisade_core::BoxError;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::layer::HedgeShared;
use crate::events::RetryEvent;
use crate::head::HeadCopy;
use crate::policy::{Decision, Predicate};
use crate::timer::{Timer, TimerProj};

pin_project! {
    /// Response future of [`Hedge`](super::Hedge). The first attempt is inline; hedged attempts are boxed
    /// (only when a hedge is actually sent).
    pub struct HedgeFuture<S, B, P>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        first: S::Future,
        #[pin]
        timer: Timer,
        st: HedgeState<S, B, P>,
    }
}

/// A hedged attempt: when it was sent (if latencies are learned) and its future.
struct Attempt<F> {
    started: Option<Instant>,
    fut: Pin<Box<F>>,
}

struct HedgeState<S: Service<Request<B>>, B, P> {
    shared: Arc<HedgeShared<P>>,
    svc: Option<S>,
    template: Option<(HeadCopy, B)>,
    others: Vec<Attempt<S::Future>>,
    delay: Duration,
    /// When the first attempt was sent (if latencies are learned).
    started: Option<Instant>,
    first_done: bool,
    sent: u32,
    hedge_now: bool,
    withdrawn: bool,
    last: Option<Result<S::Response, BoxError>>,
    /// An "in flight" 409 held back while another copy was still outstanding.
    conflict: Option<Result<S::Response, BoxError>>,
}

impl<S: Service<Request<B>>, B, P> HedgeState<S, B, P> {
    /// The state of a request sent once, with no hedge planned yet.
    fn new(shared: Arc<HedgeShared<P>>, started: Option<Instant>) -> Self {
        Self {
            shared,
            svc: None,
            template: None,
            others: Vec::new(),
            delay: Duration::ZERO,
            started,
            first_done: false,
            sent: 1,
            hedge_now: false,
            withdrawn: false,
            last: None,
            conflict: None,
        }
    }
}

impl<S, B, P> HedgeFuture<S, B, P>
where
    S: Service<Request<B>>,
{
    /// A request that may be hedged after `delay`: `svc` and `template` send the copies.
    pub(super) fn hedged(
        first: S::Future,
        delay: Duration,
        svc: Option<S>,
        template: Option<(HeadCopy, B)>,
        shared: Arc<HedgeShared<P>>,
        started: Option<Instant>,
    ) -> Self {
        Self {
            first,
            timer: Timer::after(Some(delay)),
            st: HedgeState {
                svc,
                template,
                delay,
                ..HedgeState::new(shared, started)
            },
        }
    }

    /// A request that is not hedged.
    pub(super) fn alone(
        first: S::Future,
        shared: Arc<HedgeShared<P>>,
        started: Option<Instant>,
    ) -> Self {
        Self {
            first,
            timer: Timer::Off,
            st: HedgeState::new(shared, started),
        }
    }
}

impl<S, B, P> fmt::Debug for HedgeFuture<S, B, P>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeFuture")
            .field("sent", &self.st.sent)
            .finish_non_exhaustive()
    }
}

impl<S, B, P> HedgeState<S, B, P>
where
    S: Service<Request<B>>,
    P: Predicate<S::Response>,
{
    /// `Some` = this answer (of an attempt sent at `started`) wins. `others` = another copy
    /// is still outstanding.
    fn settle(
        &mut self,
        result: Result<S::Response, BoxError>,
        started: Option<Instant>,
        others: bool,
    ) -> Option<Result<S::Response, BoxError>> {
        if others
            && let Ok(res) = &result
            && self.shared.predicate.is_in_flight_conflict(res)
        {
            // The conflict is with our own outstanding copy: wait for its answer.
            self.conflict = Some(result);
            return None;
        }
        let record = |ok| {
            if let Some(b) = &self.shared.budget {
                b.record(ok);
            }
        };
        match self.shared.predicate.check(result.as_ref()) {
            Decision::Success => {
                record(true);
                self.shared.learn(started);
                Some(result)
            }
            Decision::Return => Some(result),
            Decision::DontRetry => {
                record(false);
                Some(result)
            }
            Decision::Retry { .. } => {
                record(false);
                self.last = Some(result);
                self.hedge_now = true;
                None
            }
        }
    }
}

impl<S, B, P> Future for HedgeFuture<S, B, P>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    B: Clone,
    P: Predicate<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let st = &mut *this.st;
        loop {
            if !st.first_done
                && let Poll::Ready(r) = this.first.as_mut().poll(cx)
            {
                st.first_done = true;
                let others = !st.others.is_empty();
                if let Some(out) = st.settle(r.map_err(Into::into), st.started, others) {
                    return Poll::Ready(out);
                }
            }
            let mut i = 0;
            while i < st.others.len() {
                if let Poll::Ready(r) = st.others[i].fut.as_mut().poll(cx) {
                    let done = st.others.swap_remove(i);
                    drop(done.fut);
                    let others = !st.first_done || !st.others.is_empty();
                    if let Some(out) = st.settle(r.map_err(Into::into), done.started, others) {
                        return Poll::Ready(out);
                    }
                } else {
                    i += 1;
                }
            }
            let in_flight = !st.first_done || !st.others.is_empty();
            let can_hedge = st.template.is_some() && st.sent <= st.shared.max_hedged;
            if !can_hedge {
                if in_flight {
                    return Poll::Pending;
                }
                let out = st.last.take().or_else(|| st.conflict.take());
                return Poll::Ready(out.expect("a hedged attempt result"));
            }
            if !st.hedge_now {
                let fired = match this.timer.as_mut().project() {
                    TimerProj::On { sleep } => sleep.poll(cx).is_ready(),
                    TimerProj::Off => false,
                };
                if !fired {
                    return Poll::Pending;
                }
                st.hedge_now = true;
            }
            if !st.withdrawn {
                if let Some(b) = &st.shared.budget
                    && !b.withdraw()
                {
                    let attempts = st.sent;
                    st.shared
                        .listeners
                        .emit_named(|instance| RetryEvent::BudgetExhausted { instance, attempts });
                    st.template = None;
                    continue;
                }
                st.withdrawn = true;
            }
            let svc = st.svc.as_mut().expect("hedge service");
            match svc.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    st.template = None;
                    if !in_flight {
                        return Poll::Ready(Err(e.into()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    let (head, body) = st.template.as_ref().expect("template");
                    let Some(req) = head.rebuild(body.clone()) else {
                        // Unreachable: `HeadCopy` only keeps heads that parse back.
                        st.template = None;
                        continue;
                    };
                    let started = st.shared.start();
                    st.others.push(Attempt {
                        started,
                        fut: Box::pin(svc.call(req)),
                    });
                    st.sent += 1;
                    let n = st.sent;
                    st.shared
                        .listeners
                        .emit_named(|instance| RetryEvent::Hedged { instance, n });
                    st.hedge_now = false;
                    st.withdrawn = false;
                    this.timer.set(Timer::after(Some(st.delay)));
                }
            }
        }
    }
}
