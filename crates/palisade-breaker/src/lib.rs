//! Circuit breaker middleware with Resilience4j's feature set, as a Tower layer.
//!
//! - States CLOSED, OPEN, HALF_OPEN plus DISABLED, FORCED_OPEN and METRICS_ONLY, changed by
//!   hand through a cloneable [`BreakerHandle`], which also reads state and rates.
//! - Count-based (last N calls) or time-based (last N seconds, per-second buckets) windows;
//!   failure-rate and slow-call thresholds; a minimum number of calls before rates count.
//! - OPEN → HALF_OPEN after a fixed or exponentially growing wait, lazily on the next call
//!   (or from a timer task with [`automatic_transition`](CircuitBreakerBuilder::automatic_transition));
//!   HALF_OPEN admits exactly `permitted_in_half_open` concurrent probes and closes or
//!   reopens from their outcomes; `max_wait_in_half_open` reopens if probes stall.
//! - Failures come from palisade-core's [`Classifier`](palisade_core::Classifier): HTTP 5xx,
//!   408, 429, gRPC statuses and errors by default; ignored outcomes count as nothing.
//! - Rejections are [`CircuitOpen`](error::CircuitOpen) `{ retry_after }` → 503 +
//!   `Retry-After` / UNAVAILABLE through `HandleRejections`. The hint is always set: the
//!   remaining OPEN time; in HALF_OPEN with every probe slot taken, the time left of
//!   `max_wait_in_half_open` or, without it, `wait_in_open`; in FORCED_OPEN, `wait_in_open`.
//! - [Keyed](KeyedCircuitBreakerLayer): one breaker per upstream or route, at most
//!   `max_keys`, in palisade-core's bounded [`KeyedStore`](palisade_core::keyed::KeyedStore):
//!   O(1) per call whatever the number of keys; at the cap the least recently used CLOSED
//!   (or no longer waiting) breaker is evicted, never an OPEN or HALF_OPEN one, and there is
//!   no shared overflow breaker; idle keys are dropped after
//!   [`idle_timeout`](KeyedCircuitBreakerLayer::idle_timeout).
//! - One breaker per layer, shared by every clone. Admission in CLOSED, DISABLED,
//!   FORCED_OPEN and during an OPEN wait is a single atomic load. Recording an outcome in
//!   CLOSED takes no lock: the window is a ring of atomic slots (count) or of per-second
//!   atomic buckets (time) with running atomic totals, so a success that replaces a success
//!   in a full count window is one atomic add. The state machine's mutex is taken only for
//!   an outcome that may open the breaker, for half-open probes and for transitions, and
//!   never across an `.await`. No allocation per call.
//!
//! # Testing
//!
//! Beyond the unit, integration and proptest model tests, the state machine and windows are
//! mutation-tested; no mutant of `src/machine.rs` or `src/window.rs` survives except the
//! equivalent ones listed, with their reasons, in the workspace's `.cargo/mutants.toml`:
//!
//! ```text
//! cargo mutants -p palisade-breaker --file crates/palisade-breaker/src/machine.rs \
//!     --file crates/palisade-breaker/src/window.rs -j 1 --timeout 60 \
//!     -- --lib --test breaker
//! ```
//!
//! The lock-free window (recording, a time window's rotation, clearing, and the check
//! that decides whether an outcome takes the lock to open the breaker) has a `loom` model,
//! `tests/loom.rs`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p palisade-breaker --test loom --release
//! ```
//!
//! Put it inside retry (so a retry meets the open breaker and stops) and outside the
//! bulkhead. The breaker does not limit concurrency (in CLOSED every call passes, as in
//! Resilience4j): use a bulkhead for that.
//!
//! # Any request type
//!
//! [`CircuitBreaker`] is a `Service<R>` for every `R`: nothing is read from the request,
//! so it stacks on a broker producer's `Service<PublishRequest>`, a database call or a
//! `Service<u64>` as it is. Only the classifier looks at results, and the default one
//! ([`DefaultClassifier`](palisade_core::DefaultClassifier)) wants HTTP responses: for any
//! other response give [`ErrorsAsFailures`](palisade_core::ErrorsAsFailures) (every `Err`
//! is a failure) or a [`classify_fn`](palisade_core::classify_fn) closure, which may reuse
//! `DefaultClassifier::classify_error` to ignore the local refusals of layers inside.
//!
//! ```
//! use palisade_breaker::{CircuitBreakerLayer, SlidingWindow, State};
//! use palisade_core::classify::{DefaultClassifier, Outcome, classify_fn};
//! use palisade_core::{BoxError, CircuitOpen};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // A row count of 0 means the replica lost its data: a failure, as are errors.
//! let classify = classify_fn(|r: Result<&u64, &BoxError>| match r {
//!     Ok(0) => Outcome::Failure,
//!     Ok(_) => Outcome::Success,
//!     Err(e) => DefaultClassifier::new().classify_error(e),
//! });
//! let layer = CircuitBreakerLayer::builder()
//!     .window(SlidingWindow::Count(2))
//!     .minimum_calls(2)
//!     .classifier(classify)
//!     .build()
//!     .unwrap();
//! let count_rows = layer.layer(service_fn(|table: &'static str| async move {
//!     Ok::<u64, BoxError>(if table == "lost" { 0 } else { 42 })
//! }));
//! assert_eq!(count_rows.clone().oneshot("users").await.unwrap(), 42);
//! count_rows.clone().oneshot("lost").await.unwrap(); // 0: counted as a failure
//! assert_eq!(layer.handle().state(), State::Open); // 50 % of 2 calls failed
//! assert!(count_rows.oneshot("users").await.unwrap_err().is::<CircuitOpen>());
//! # }
//! ```
//!
//! # Example
//! ```
//! use palisade_breaker::{CircuitBreakerLayer, SlidingWindow, State};
//! use palisade_core::{CircuitOpen, ErrorsAsFailures};
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let layer = CircuitBreakerLayer::builder()
//!     .window(SlidingWindow::Count(10))
//!     .minimum_calls(5)
//!     .wait_in_open(Duration::from_secs(30))
//!     .classifier(ErrorsAsFailures)
//!     .build()
//!     .unwrap();
//! let handle = layer.handle();
//! let svc = layer.layer(service_fn(|_: ()| async { Err::<(), _>("upstream down") }));
//!
//! for _ in 0..5 {
//!     assert!(svc.clone().oneshot(()).await.is_err());
//! }
//! assert_eq!(handle.state(), State::Open);
//! let err = svc.clone().oneshot(()).await.unwrap_err();
//! let open = err.downcast_ref::<CircuitOpen>().unwrap();
//! assert_eq!(open.retry_after, Some(Duration::from_secs(30)));
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod config;
pub mod error;
pub mod events;
pub mod future;
mod handle;
mod keyed;
mod layer;
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model;
mod machine;
mod service;
mod shared;
mod window;

pub use config::BreakerConfig;
pub use events::BreakerEvent;
pub use handle::BreakerHandle;
pub use keyed::{
    DEFAULT_KEY_IDLE, DEFAULT_MAX_KEYS, KeyedCircuitBreaker, KeyedCircuitBreakerLayer,
};
pub use layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use machine::State;
pub use service::CircuitBreaker;
pub use window::{SlidingWindow, Totals};
