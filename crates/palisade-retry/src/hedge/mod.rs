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
//! [`Predicate::is_in_flight_conflict`](crate::Predicate::is_in_flight_conflict); the default predicate recognises a 409 RFC 9457
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

mod config;
mod future;
mod layer;
mod service;

pub use self::config::{HedgeBuilder, MAX_DELAY, MAX_HEDGED, MAX_MIN_DATA_POINTS, PERIOD_RANGE};
pub use self::future::HedgeFuture;
pub use self::layer::HedgeLayer;
pub use self::service::Hedge;
