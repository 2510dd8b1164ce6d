//! A test kit for Tower policies, for Palisade's users and its own tests.
//!
//! - [`scripted`]: [`ScriptedService`], a handler answering from a script (`ok()`,
//!   `status(503)`, `delay(ms(50)).then_ok()`, `error(..)`, `hang()`, `.times(n)`, closures),
//!   recording every request, counting calls in flight and listing the calls dropped unanswered.
//! - [`bodies`]: [`CollectBodies`], which reads and records each request body in front of a
//!   handler (what a retrying layer sent on each attempt).
//! - [`time`]: helpers over tokio's paused clock ([`advance_to`](time::advance_to),
//!   [`settle`](time::settle)).
//! - [`events`]: [`EventRecorder`], which collects the events of every Palisade layer, and
//!   [`assert_events!`].
//! - [`redis_cluster`]: [`RedisCluster`](redis_cluster::RedisCluster), a private
//!   3-primary Redis Cluster started from `redis-server` for a test and stopped on drop.
//! - [`scenario`]: [`Scenario`], which sends requests at given instants through a stack and
//!   returns the outcome table (status or rejection per request).
//!
//! Add it as a dev-dependency. Every helper runs on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`), so hours of policy behaviour take milliseconds.
//!
//! # Testing your policies
//!
//! A breaker should open after a burst of 503s, let a probe through after its wait, and close
//! when the probes succeed. The whole story, 11 s of policy time, runs in well under a
//! second of wall time:
//!
//! ```
//! use palisade_breaker::{BreakerEvent, CircuitBreakerLayer, SlidingWindow, State};
//! use palisade_test::scripted::{ScriptedService, status};
//! use palisade_test::{EventRecorder, Scenario, assert_events};
//! use std::time::Duration;
//! use tower::Layer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let wall = std::time::Instant::now();
//! let events = EventRecorder::new();
//! let breaker = CircuitBreakerLayer::builder()
//!     .window(SlidingWindow::Count(10))
//!     .minimum_calls(5)
//!     .wait_in_open(Duration::from_secs(10))
//!     .permitted_in_half_open(2)
//!     .on_event(events.on::<BreakerEvent>())
//!     .build()
//!     .unwrap();
//! // The upstream fails five times, then recovers.
//! let upstream = ScriptedService::new().then(status(503).times(5));
//! let stack = breaker.layer(upstream.clone());
//!
//! let ms = Duration::from_millis;
//! let get = || http::Request::new(());
//! let table = Scenario::new()
//!     .every(ms(100), 5, get)            // the 503 burst: 0–400 ms
//!     .at(ms(500), get)                  // open: refused without calling upstream
//!     .at(ms(10_500), get)               // after the wait: half-open probes
//!     .at(ms(10_600), get)
//!     .at(ms(11_000), get)               // closed again
//!     .run(stack)
//!     .await;
//! assert_eq!(
//!     table,
//!     ["503", "503", "503", "503", "503", "rejected:circuit_open", "200", "200", "200"]
//! );
//! assert_eq!(upstream.calls(), 8); // the refused request never reached it
//! assert_events!(events, BreakerEvent, [
//!     BreakerEvent::StateChanged { from: State::Closed, to: State::Open, .. },
//!     BreakerEvent::Rejected { state: State::Open, .. },
//!     BreakerEvent::StateChanged { from: State::Open, to: State::HalfOpen, .. },
//!     BreakerEvent::StateChanged { from: State::HalfOpen, to: State::Closed, .. },
//! ]);
//! assert!(wall.elapsed() < Duration::from_secs(1));
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod bodies;
pub mod events;
pub mod redis_cluster;
pub mod scenario;
pub mod scripted;
pub mod time;

pub use bodies::CollectBodies;
pub use events::{EventRecorder, Recorded};
pub use scenario::{Outcome, Scenario};
pub use scripted::{ScriptedService, Seen, Step};
