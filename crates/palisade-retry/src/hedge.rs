//! Hedging: after a delay, send another copy of a slow retry-safe request, up to
//! `max_hedged` extra copies; the first acceptable response wins and the others are dropped.
//!
//! The delay is fixed ([`HedgeLayer::new`]), or learned ([`HedgeLayer::builder`]): a
//! [`percentile`](HedgeBuilder::percentile) of the latencies of recent successful calls,
//! as in tower's `hedge` and "The Tail at Scale" (Dean and Barroso, 2013: send a second
//! request once the first has been outstanding longer than the 95th-percentile latency).
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
//! # Learned delay
//!
//! Every service built by one layer (and their clones) records into one histogram; use one
//! layer per upstream. Time is cut into [`period`](HedgeBuilder::period)s (default 10 s) and
//! the delay comes from the last *full* period, like tower's `RotatingHistogram`: after a
//! quiet period nothing is known and nothing is hedged. While the last full period recorded
//! fewer than [`min_data_points`](HedgeBuilder::min_data_points) successful calls (default
//! 20), requests are sent alone, as tower does, but still timed. Only attempts the predicate
//! calls a success are recorded, from the moment each copy is sent to its answer (a copy that
//! loses is dropped, never recorded). Recording is one atomic add; the percentile is
//! computed once per period (see the private `latency` module: log-linear buckets, at most
//! 1.6 % wide, and the delay is the top of the percentile's bucket, so never below it).
//!
//! ```
//! use palisade_retry::HedgeLayer;
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), palisade_core::ConfigError> {
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! // 10 ms per call, except call 20, which is stuck.
//! let upstream = service_fn(move |_req: http::Request<()>| {
//!     let n = c.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let wait = if n == 20 { 60_000 } else { 10 };
//!         tokio::time::sleep(Duration::from_millis(wait)).await;
//!         Ok::<_, palisade_core::BoxError>(http::Response::new(n))
//!     }
//! });
//! let layer = HedgeLayer::builder()
//!     .percentile(95.0)
//!     .min_data_points(20)
//!     .period(Duration::from_secs(10))
//!     .build()?;
//! let svc = layer.layer(upstream);
//! for _ in 0..20 {
//!     svc.clone().oneshot(http::Request::new(())).await.unwrap();
//! }
//! assert_eq!(layer.current_delay(), None); // the period is not over
//! tokio::time::advance(Duration::from_secs(10)).await;
//! let p95 = layer.current_delay().unwrap();
//! assert!(p95 >= Duration::from_millis(10) && p95 < Duration::from_millis(11));
//!
//! let start = tokio::time::Instant::now();
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(*res.body(), 21); // the hedge, sent at p95, answered first
//! // (tokio's timers tick in whole milliseconds)
//! let hedge_answered = p95 + Duration::from_millis(10);
//! assert!(start.elapsed() >= hedge_answered);
//! assert!(start.elapsed() <= hedge_answered + Duration::from_millis(1));
//! # Ok(()) }
//! ```
//!
//! Requests are copied (head and body), so the body type must be `Clone`
//! (`Full<Bytes>`, `Empty`, `()`); the head is copied into a reused buffer, so a request
//! that is not hedged costs no allocation for it.
//!
//! # Which requests are hedged
//!
//! Only requests whose method is *safe* (RFC 9110 §9.2.1: GET, HEAD, OPTIONS, TRACE) are
//! hedged by default. A hedge runs *concurrently* with the original, so even an idempotent
//! PUT or a POST with an `Idempotency-Key` would reach the server twice at once: an
//! idempotency layer there answers the second copy `409 Conflict` while the first is in
//! flight, and a plain server may apply it twice. Opt in with
//! [`hedge_unsafe_methods(true)`](HedgeLayer::hedge_unsafe_methods) (or
//! `hedge_unsafe_methods = true` in [`HedgeConfig`](crate::HedgeConfig)) for upstreams
//! that deduplicate.
//!
//! A `409` "request still in flight" answer (see
//! [`Predicate::is_in_flight_conflict`]; the default predicate recognises a 409 RFC 9457
//! problem, as Palisade's idempotency layer sends it) is never final while another copy of
//! the request is outstanding: the conflict is with that copy, whose answer is awaited and
//! returned instead. It triggers no further hedge. Only when every copy has answered is a
//! conflict returned.
//!
//! Each hedge
//! withdraws from the budget (share one with
//! [`RetryLayer::shared_budget`](crate::RetryLayer::shared_budget)). An attempt the
//! predicate calls a retryable failure triggers the next hedge at once (gRFC A6 non-fatal
//! codes); any other answer wins.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use palisade_core::config::check_duration;
use palisade_core::{BoxError, ConfigError, Listeners};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::budget::Budget;
use crate::events::RetryEvent;
use crate::future::{Timer, TimerProj};
use crate::head::HeadCopy;
use crate::latency::LatencyHistogram;
use crate::policy::{Decision, DefaultPredicate, Predicate, is_safe};

/// Layer that hedges slow requests; see the [module docs](self).
pub struct HedgeLayer<P = DefaultPredicate> {
    shared: HedgeShared<P>,
}

/// When to send a hedge.
#[derive(Clone)]
enum HedgeDelay {
    Fixed(Duration),
    /// Shared by every service the layer builds.
    Learned(Arc<LatencyHistogram>),
}

impl fmt::Debug for HedgeDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(d) => f.debug_tuple("Fixed").field(d).finish(),
            Self::Learned(h) => f
                .debug_struct("Learned")
                .field("percentile", &h.percentile())
                .field("min_data_points", &h.min_data_points())
                .field("period", &h.period())
                .finish(),
        }
    }
}

struct HedgeShared<P> {
    delay: HedgeDelay,
    max_hedged: u32,
    budget: Option<Arc<dyn Budget>>,
    listeners: Listeners<RetryEvent>,
    hedge_unsafe: bool,
    predicate: P,
}

impl<P> HedgeShared<P> {
    /// Records the latency of a successful attempt sent at `started` (learned delay only).
    fn learn(&self, started: Option<Instant>) {
        if let (HedgeDelay::Learned(h), Some(started)) = (&self.delay, started) {
            let now = Instant::now();
            h.record(now.saturating_duration_since(started), now);
        }
    }

    /// The send time of an attempt, if latencies are learned.
    fn start(&self) -> Option<Instant> {
        matches!(self.delay, HedgeDelay::Learned(_)).then(Instant::now)
    }
}

impl<P: Clone> Clone for HedgeShared<P> {
    fn clone(&self) -> Self {
        Self {
            delay: self.delay.clone(),
            max_hedged: self.max_hedged,
            budget: self.budget.clone(),
            listeners: self.listeners.clone(),
            hedge_unsafe: self.hedge_unsafe,
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
                delay: HedgeDelay::Fixed(delay),
                max_hedged: 1,
                budget: None,
                listeners: Listeners::new().named("hedge"),
                hedge_unsafe: false,
                predicate: DefaultPredicate,
            },
        }
    }

    /// A builder, for a delay learned from recent latencies. Defaults: the 95th percentile
    /// of the last full 10 s period, hedging once it holds at least 20 successful calls; one
    /// extra copy at most, no budget.
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder {
            layer: Self::new(Duration::ZERO),
            fixed: None,
            percentile: 95.0,
            min_data_points: 20,
            period: Duration::from_secs(10),
        }
    }
}

impl<P> HedgeLayer<P> {
    /// Extra copies at most, up to [`MAX_HEDGED`] (larger values are lowered to it; 0
    /// disables hedging).
    pub fn max_hedged(mut self, n: u32) -> Self {
        self.shared.max_hedged = n.min(MAX_HEDGED);
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
    /// Also hedge requests whose method is not safe (PUT, DELETE, POST, PATCH, …, with or
    /// without an `Idempotency-Key`). Default `false`: only GET, HEAD, OPTIONS and TRACE are
    /// hedged; see [which requests are hedged](self#which-requests-are-hedged).
    pub fn hedge_unsafe_methods(mut self, yes: bool) -> Self {
        self.shared.hedge_unsafe = yes;
        self
    }
    /// The former name of [`hedge_unsafe_methods`](Self::hedge_unsafe_methods).
    #[deprecated(note = "use `hedge_unsafe_methods`; only safe methods are hedged by default")]
    pub fn retry_unsafe_methods(self, yes: bool) -> Self {
        self.hedge_unsafe_methods(yes)
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
                hedge_unsafe: s.hedge_unsafe,
                predicate,
            },
        }
    }

    /// The delay after which a request sent now would be hedged: the fixed delay, or the
    /// one learned from the last full period; `None` while that period recorded fewer than
    /// `min_data_points` successful calls (requests are then sent alone).
    pub fn current_delay(&self) -> Option<Duration> {
        match &self.shared.delay {
            HedgeDelay::Fixed(d) => Some(*d),
            HedgeDelay::Learned(h) => h.delay(Instant::now()),
        }
    }
}

/// Builds a [`HedgeLayer`]; the delay settings are checked by [`build`](Self::build).
///
/// Made by [`HedgeLayer::builder`]. [`percentile`](Self::percentile) (the default, 95) and
/// [`delay`](Self::delay) choose between a learned and a fixed delay: the one set last wins.
pub struct HedgeBuilder<P = DefaultPredicate> {
    /// Everything but the delay.
    layer: HedgeLayer<P>,
    fixed: Option<Duration>,
    percentile: f64,
    min_data_points: u64,
    period: Duration,
}

impl<P> fmt::Debug for HedgeBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBuilder")
            .field("fixed", &self.fixed)
            .field("percentile", &self.percentile)
            .field("min_data_points", &self.min_data_points)
            .field("period", &self.period)
            .field("max_hedged", &self.layer.shared.max_hedged)
            .finish_non_exhaustive()
    }
}

/// Most extra copies of one request ([`HedgeLayer::max_hedged`]).
pub const MAX_HEDGED: u32 = 10;
/// Longest fixed delay accepted by [`HedgeBuilder::build`]: 1 h.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Largest [`HedgeBuilder::min_data_points`].
pub const MAX_MIN_DATA_POINTS: u64 = 1_000_000;

/// Bounds of [`HedgeBuilder::period`].
pub const PERIOD_RANGE: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_secs(3600));

impl<P> HedgeBuilder<P> {
    /// Hedges after the `percentile`-th latency of the successful calls of the last full
    /// period, in (0, 100]: 95.0 is the 95th percentile, 100.0 the slowest call.
    #[must_use]
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.percentile = percentile;
        self.fixed = None;
        self
    }
    /// Successful calls the last full period must hold before any request is hedged
    /// (at least 1; default 20). Learned delay only.
    #[must_use]
    pub fn min_data_points(mut self, n: u64) -> Self {
        self.min_data_points = n;
        self
    }
    /// How long latencies are collected before they are used, 1 ms–1 h (default 10 s).
    /// The delay is learned from the last full period; data older than two periods is
    /// forgotten. Learned delay only.
    #[must_use]
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }
    /// Hedges after a fixed `delay` instead (as [`HedgeLayer::new`]).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.fixed = Some(delay);
        self
    }
    /// Extra copies at most (default 1; 0 disables hedging; at most [`MAX_HEDGED`]).
    #[must_use]
    pub fn max_hedged(mut self, n: u32) -> Self {
        self.layer = self.layer.max_hedged(n);
        self
    }
    /// The budget each hedge withdraws from (default: none).
    #[must_use]
    pub fn budget(mut self, budget: impl Budget) -> Self {
        self.layer = self.layer.budget(budget);
        self
    }
    /// A budget shared with other layers (e.g. the retry layer).
    #[must_use]
    pub fn shared_budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.layer = self.layer.shared_budget(budget);
        self
    }
    /// Adds an event listener.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.layer = self.layer.on_event(f);
        self
    }
    /// Also hedge requests whose method is not safe; see
    /// [`HedgeLayer::hedge_unsafe_methods`].
    #[must_use]
    pub fn hedge_unsafe_methods(mut self, yes: bool) -> Self {
        self.layer = self.layer.hedge_unsafe_methods(yes);
        self
    }
    /// The former name of [`hedge_unsafe_methods`](Self::hedge_unsafe_methods).
    #[deprecated(note = "use `hedge_unsafe_methods`; only safe methods are hedged by default")]
    #[must_use]
    pub fn retry_unsafe_methods(self, yes: bool) -> Self {
        self.hedge_unsafe_methods(yes)
    }
    /// Replaces which answers are acceptable (and, for a learned delay, recorded).
    #[must_use]
    pub fn predicate<Q>(self, predicate: Q) -> HedgeBuilder<Q> {
        HedgeBuilder {
            layer: self.layer.predicate(predicate),
            fixed: self.fixed,
            percentile: self.percentile,
            min_data_points: self.min_data_points,
            period: self.period,
        }
    }

    /// Checks the settings and builds the layer (for a learned delay, with the one
    /// histogram all its services share).
    ///
    /// # Errors
    /// `percentile` outside (0, 100] or not a number, `min_data_points` outside 1 to
    /// 1,000,000, `period` outside 1 ms–1 h, a fixed `delay` over 1 h; the error names the
    /// field and what is allowed.
    pub fn build(self) -> Result<HedgeLayer<P>, ConfigError> {
        let mut layer = self.layer;
        if let Some(d) = self.fixed {
            check_duration("delay", d, Duration::ZERO, MAX_DELAY)?;
            layer.shared.delay = HedgeDelay::Fixed(d);
            return Ok(layer);
        }
        let p = self.percentile;
        if !(p > 0.0 && p <= 100.0) {
            return Err(ConfigError::new(
                "percentile",
                format!(
                    "must be greater than 0 and at most 100, e.g. 95.0 for the 95th percentile (got {p})"
                ),
            ));
        }
        if self.min_data_points > MAX_MIN_DATA_POINTS {
            return Err(ConfigError::new(
                "min_data_points",
                format!(
                    "must be between 1 and {MAX_MIN_DATA_POINTS} (got {})",
                    self.min_data_points
                ),
            ));
        }
        if self.min_data_points == 0 {
            return Err(ConfigError::new(
                "min_data_points",
                "must be at least 1 (got 0): no delay can be learned from no calls; \
                 use `delay` for a fixed one",
            ));
        }
        check_duration("period", self.period, PERIOD_RANGE.0, PERIOD_RANGE.1)?;
        layer.shared.delay = HedgeDelay::Learned(Arc::new(LatencyHistogram::new(
            p,
            self.min_data_points,
            self.period,
        )));
        Ok(layer)
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
            .field("delay", &self.shared.delay)
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
    /// Consumes the service, returning the inner one.
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
        let hedgeable = shared.max_hedged > 0 && (shared.hedge_unsafe || is_safe(req.method()));
        if !hedgeable {
            let first = self.inner.call(req);
            return HedgeFuture::alone(first, shared, None);
        }
        let (delay, started) = match &shared.delay {
            HedgeDelay::Fixed(d) => (Some(*d), None),
            HedgeDelay::Learned(h) => {
                let now = Instant::now();
                (h.delay(now), Some(now))
            }
        };
        let Some(delay) = delay else {
            // Too few latencies learned: sent alone, and timed to learn from.
            let first = self.inner.call(req);
            return HedgeFuture::alone(first, shared, started);
        };
        // The head is copied into a reused buffer, rebuilt only if a hedge is sent.
        let template = HeadCopy::of(&req).map(|head| (head, req.body().clone()));
        let first = self.inner.call(req);
        let svc = template.as_ref().map(|_| self.inner.clone());
        HedgeFuture {
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
    /// A request that is not hedged.
    fn alone(first: S::Future, shared: Arc<HedgeShared<P>>, started: Option<Instant>) -> Self {
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
