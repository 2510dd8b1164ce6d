//! Hedging: after `delay`, send another copy of a slow retry-safe request, up to
//! `max_hedged` extra copies; the first acceptable response wins and the others are dropped.
//!
//! ```
//! use palisade_retry::HedgeLayer;
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! let upstream = service_fn(move |_req: http::Request<()>| {
//!     let n = c.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         // the first copy is stuck, the hedge answers in 10 ms
//!         let wait = if n == 0 { 60_000 } else { 10 };
//!         tokio::time::sleep(Duration::from_millis(wait)).await;
//!         Ok::<_, palisade_core::BoxError>(http::Response::new(n))
//!     }
//! });
//! let svc = HedgeLayer::new(Duration::from_millis(50)).layer(upstream);
//! let start = tokio::time::Instant::now();
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(*res.body(), 1);
//! assert_eq!(start.elapsed(), Duration::from_millis(60));
//! # }
//! ```
//!
//! Requests are copied (parts and body), so the body type must be `Clone`
//! (`Full<Bytes>`, `Empty`, `()`). Only idempotent or `Idempotency-Key` requests are
//! hedged unless [`HedgeLayer::retry_unsafe_methods`] is set. Each hedge withdraws from the
//! budget (share one with [`RetryLayer::shared_budget`](crate::RetryLayer::shared_budget)).
//! An attempt the predicate calls a retryable failure triggers the next hedge at once
//! (gRFC A6 non-fatal codes); any other answer wins.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use http::request::Parts;
use palisade_core::{BoxError, Listeners};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::budget::Budget;
use crate::events::RetryEvent;
use crate::future::{Timer, TimerProj};
use crate::policy::{Decision, DefaultPredicate, IDEMPOTENCY_KEY, Predicate, is_idempotent};

/// Layer that hedges slow requests; see the [module docs](self).
pub struct HedgeLayer<P = DefaultPredicate> {
    shared: HedgeShared<P>,
}

struct HedgeShared<P> {
    delay: Duration,
    max_hedged: u32,
    budget: Option<Arc<dyn Budget>>,
    listeners: Listeners<RetryEvent>,
    retry_unsafe: bool,
    predicate: P,
}

impl<P: Clone> Clone for HedgeShared<P> {
    fn clone(&self) -> Self {
        Self {
            delay: self.delay,
            max_hedged: self.max_hedged,
            budget: self.budget.clone(),
            listeners: self.listeners.clone(),
            retry_unsafe: self.retry_unsafe,
            predicate: self.predicate.clone(),
        }
    }
}

impl<P: Clone> Clone for HedgeLayer<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P> fmt::Debug for HedgeLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("delay", &self.shared.delay)
            .field("max_hedged", &self.shared.max_hedged)
            .finish_non_exhaustive()
    }
}

impl HedgeLayer {
    /// Hedges after a fixed `delay`, one extra copy at most, no budget.
    pub fn new(delay: Duration) -> Self {
        Self {
            shared: HedgeShared {
                delay,
                max_hedged: 1,
                budget: None,
                listeners: Listeners::new(),
                retry_unsafe: false,
                predicate: DefaultPredicate,
            },
        }
    }
}

impl<P> HedgeLayer<P> {
    /// Extra copies at most (0 disables hedging).
    pub fn max_hedged(mut self, n: u32) -> Self {
        self.shared.max_hedged = n;
        self
    }
    /// The budget each hedge withdraws from.
    pub fn budget(mut self, budget: impl Budget) -> Self {
        self.shared.budget = Some(Arc::new(budget));
        self
    }
    /// A budget shared with other layers (e.g. the retry layer).
    pub fn shared_budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.shared.budget = Some(budget);
        self
    }
    /// Adds an event listener.
    pub fn on_event(mut self, f: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.shared.listeners = self.shared.listeners.on(f);
        self
    }
    /// Also hedge non-idempotent requests without an `Idempotency-Key`.
    pub fn retry_unsafe_methods(mut self, yes: bool) -> Self {
        self.shared.retry_unsafe = yes;
        self
    }
    /// Replaces which answers are acceptable.
    pub fn predicate<Q>(self, predicate: Q) -> HedgeLayer<Q> {
        let s = self.shared;
        HedgeLayer {
            shared: HedgeShared {
                delay: s.delay,
                max_hedged: s.max_hedged,
                budget: s.budget,
                listeners: s.listeners,
                retry_unsafe: s.retry_unsafe,
                predicate,
            },
        }
    }
}

impl<S, P: Clone> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;
    fn layer(&self, inner: S) -> Hedge<S, P> {
        Hedge {
            inner,
            shared: Arc::new(self.shared.clone()),
        }
    }
}

/// Hedging service; built by [`HedgeLayer`]. Clones share one state.
pub struct Hedge<S, P> {
    inner: S,
    shared: Arc<HedgeShared<P>>,
}

impl<S: Clone, P> Clone for Hedge<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Hedge<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, P> Hedge<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Consumes the layer, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, P> Service<Request<B>> for Hedge<S, P>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Clone,
    P: Predicate<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = HedgeFuture<S, B, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        if let Some(b) = &shared.budget {
            b.deposit();
        }
        let hedgeable = shared.max_hedged > 0
            && (shared.retry_unsafe
                || is_idempotent(req.method())
                || req.headers().contains_key(IDEMPOTENCY_KEY));
        if !hedgeable {
            let first = self.inner.call(req);
            return HedgeFuture {
                first,
                timer: Timer::Off,
                st: HedgeState {
                    shared,
                    svc: None,
                    template: None,
                    others: Vec::new(),
                    first_done: false,
                    sent: 1,
                    hedge_now: false,
                    withdrawn: false,
                    last: None,
                },
            };
        }
        let (parts, body) = req.into_parts();
        let template = (parts.clone(), body.clone());
        let clone = self.inner.clone();
        let mut svc = std::mem::replace(&mut self.inner, clone);
        let first = svc.call(Request::from_parts(parts, body));
        let timer = Timer::after(Some(shared.delay));
        HedgeFuture {
            first,
            timer,
            st: HedgeState {
                shared,
                svc: Some(svc),
                template: Some(template),
                others: Vec::new(),
                first_done: false,
                sent: 1,
                hedge_now: false,
                withdrawn: false,
                last: None,
            },
        }
    }
}

pin_project! {
    /// Response future of [`Hedge`]. The first attempt is inline; hedged attempts are boxed
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

struct HedgeState<S: Service<Request<B>>, B, P> {
    shared: Arc<HedgeShared<P>>,
    svc: Option<S>,
    template: Option<(Parts, B)>,
    others: Vec<Pin<Box<S::Future>>>,
    first_done: bool,
    sent: u32,
    hedge_now: bool,
    withdrawn: bool,
    last: Option<Result<S::Response, BoxError>>,
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
    /// `Some` = this answer wins.
    fn settle(
        &mut self,
        result: Result<S::Response, BoxError>,
    ) -> Option<Result<S::Response, BoxError>> {
        let record = |ok| {
            if let Some(b) = &self.shared.budget {
                b.record(ok);
            }
        };
        match self.shared.predicate.check(result.as_ref()) {
            Decision::Success => {
                record(true);
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
                if let Some(out) = st.settle(r.map_err(Into::into)) {
                    return Poll::Ready(out);
                }
            }
            let mut i = 0;
            while i < st.others.len() {
                if let Poll::Ready(r) = st.others[i].as_mut().poll(cx) {
                    drop(st.others.swap_remove(i));
                    if let Some(out) = st.settle(r.map_err(Into::into)) {
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
                return Poll::Ready(st.last.take().expect("a hedged attempt result"));
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
                        .emit_with(|| RetryEvent::BudgetExhausted { attempts });
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
                    let (parts, body) = st.template.as_ref().expect("template");
                    let req = Request::from_parts(parts.clone(), body.clone());
                    st.others.push(Box::pin(svc.call(req)));
                    st.sent += 1;
                    let n = st.sent;
                    st.shared.listeners.emit_with(|| RetryEvent::Hedged { n });
                    st.hedge_now = false;
                    st.withdrawn = false;
                    this.timer.set(Timer::after(Some(st.shared.delay)));
                }
            }
        }
    }
}
