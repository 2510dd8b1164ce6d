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
//! # Sharing state across a fleet
//!
//! With the `redis` feature, `CircuitBreakerBuilder::redis` (or a config's `fleet`
//! section, [`FleetConfig`], plus the connection in code) makes one breaker of every
//! instance that uses the same key prefix and fleet name:
//!
//! - **Window.** Each instance records outcomes into its own window as usual, and counts
//!   them for the fleet in three atomics. A task started by `build` flushes them every
//!   [`flush_interval`](FleetConfig::flush_interval) (default 100 ms) in one `EVALSHA` round
//!   trip, which adds them to the fleet's per-second buckets, drops the seconds that left
//!   the window, and reads the fleet's totals back. The request path never waits for Redis.
//!   Fleet mode needs a time window: calls on different instances have no shared order, so
//!   there is no fleet-wide "last N calls".
//! - **State.** The same script opens the shared breaker when the fleet's rates cross the
//!   thresholds (with at least `minimum_calls` fleet-wide), moves it to HALF_OPEN when the
//!   wait is over, and decides from the probes. The state is one hash with a fencing epoch
//!   that every transition bumps; only the script changes it, atomically, and reports of an
//!   older epoch are ignored. Instances follow it at their next flush: failures seen by one
//!   instance open the breaker on all within two flush intervals (plus round trips). Redis's
//!   `TIME` is the only clock, so instances with skewed clocks agree.
//! - **Probes.** HALF_OPEN admits exactly `permitted_in_half_open` probes fleet-wide,
//!   without a round trip per call: an instance whose calls met OPEN or HALF_OPEN asks for
//!   probe *leases* in its next flush and admits at most the leases it holds. Each flush
//!   reports the instance's unfinished leases and its probe outcomes as absolute numbers (a
//!   lost reply loses nothing), and gives back leases it did not use; the leases of an
//!   instance that stops flushing for five intervals (at least 500 ms) are freed. The cost is
//!   latency, not extra probes: the first probe passes up to one flush interval after the
//!   fleet half-opens, and a rejected call's `Retry-After` is then one flush interval.
//! - **Redis down.** A flush that fails (or takes more than twice the interval, at least
//!   200 ms) makes the instance decide alone, from the window it kept recording, with its
//!   own timers and probe count, and emits [`BreakerEvent::FleetDegraded`] (once per
//!   outage); outcomes counted for that flush are dropped. The first flush that succeeds
//!   again emits [`BreakerEvent::FleetRejoined`] and the instance follows the fleet's state
//!   again. [`BreakerHandle::fleet_connected`] tells which mode it is in.
//! - **Keys.** `<prefix>{<name>}:window` and `<prefix>{<name>}:state` (the name in
//!   palisade-core's storage-key encoding): one hash tag, so the script touches one Redis
//!   Cluster slot. Both expire when no instance flushes (the window after its length).
//! - Manual transitions ([`BreakerHandle`]) stay local: DISABLED, FORCED_OPEN and
//!   METRICS_ONLY keep this instance out of the fleet's state; `open` and `reset` last until
//!   the next flush brings the fleet's state back. Keyed breakers are not shared.
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # #[allow(dead_code)]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use palisade_breaker::{CircuitBreakerLayer, FleetConfig, SlidingWindow};
//! use std::time::Duration;
//!
//! let conn = redis::aio::ConnectionManager::new(redis::Client::open("redis://127.0.0.1")?).await?;
//! let mut fleet = FleetConfig::default();
//! fleet.name = Some("payments".into()); // every instance of the service uses this name
//! fleet.flush_interval = Duration::from_millis(100);
//! let layer = CircuitBreakerLayer::builder()
//!     .window(SlidingWindow::Time(30))
//!     .minimum_calls(20)
//!     .fleet(fleet)
//!     .redis(conn)
//!     .on_event(|e| eprintln!("{e:?}")) // FleetDegraded / FleetRejoined, state changes
//!     .build()?; // inside a Tokio runtime: starts the flush task
//! let _handle = layer.handle(); // `fleet_connected()`: whether the fleet decides
//! # Ok(()) }
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
mod fleet;
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

pub use config::{BreakerConfig, DEFAULT_FLEET_PREFIX, DEFAULT_FLUSH_INTERVAL, FleetConfig};
pub use events::BreakerEvent;
pub use handle::BreakerHandle;
pub use keyed::{
    DEFAULT_KEY_IDLE, DEFAULT_MAX_KEYS, KeyedCircuitBreaker, KeyedCircuitBreakerLayer,
};
pub use layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use machine::State;
pub use service::CircuitBreaker;
pub use window::{SlidingWindow, Totals};
