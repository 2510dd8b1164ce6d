//! Bulkhead: a concurrency limit with a bounded priority queue, load shedding or
//! backpressure, as a Tower layer.
//!
//! - At most `max_concurrent` calls inside; up to `max_queue` more wait, each for at most
//!   `max_queue_wait`; the rest are refused at once with
//!   [`BulkheadFull`](error::BulkheadFull) → 503 + `Retry-After` / RESOURCE_EXHAUSTED.
//! - [`BulkheadMode::Shed`] (default) keeps `poll_ready` always ready and decides in `call`, as axum
//!   and hyper servers need; [`BulkheadMode::Backpressure`] waits in `poll_ready`, the Tower way,
//!   for clients and pipelines.
//! - Priority lanes ([`HeaderPriority`], [`priority_fn`]): when a slot frees, the oldest
//!   waiter of the highest lane gets it; per-lane reserves keep the last slots for higher
//!   lanes.
//! - The slot is held until the response body ends ([`OnBodyEnd`], default for HTTP) or the
//!   response arrives ([`OnResponse`], any service), and always freed on drop or panic.
//! - Per-key bulkheads ([`BulkheadBuilder::build_keyed`]): one per tenant from a core
//!   `KeyExtractor`, at most `max_keys` at once, in palisade-core's bounded
//!   [`KeyedStore`](palisade_core::keyed::KeyedStore): O(1) per request whatever the number of
//!   keys. At the cap a new key evicts the least recently used idle key; a key with calls in
//!   flight or queued is never evicted (its count would be lost), so when none of the oldest
//!   is idle the new key's request gets `BulkheadFull`. Idle keys expire after
//!   [`key_idle_timeout`](BulkheadBuilder::key_idle_timeout).
//! - Adaptive limit ([`Aimd`], or [`Gradient`] as in Netflix concurrency-limits): the limit shrinks when calls get slow and grows back when
//!   they are fast again, between a min and a max.
//! - [`BulkheadHandle`] reads in-flight, queued and limit, and changes the limit at run time.
//!
//! # Testing
//!
//! The packed-atomic admission (take, queue, release, abandon, resize) has a `loom` model,
//! run with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p palisade-bulkhead --test loom --release
//! ```
//!
//! (use a separate `CARGO_TARGET_DIR` to keep the normal build's artifacts). The admission
//! and its adaptive limits are also mutation-tested; no mutant survives except the equivalent ones listed, with
//! their reasons, in the workspace's `.cargo/mutants.toml` (one more, "CAS always fails",
//! hangs the tests and is reported as a timeout):
//!
//! ```text
//! cargo mutants -p palisade-bulkhead --file crates/palisade-bulkhead/src/admission.rs \
//!     --file crates/palisade-bulkhead/src/adaptive.rs \
//!     -j 1 --timeout 60 -- --lib --test bulkhead
//! ```
//!
//! Compared with `tower::limit::ConcurrencyLimit` + `LoadShed`: one layer, a queue with a
//! time bound, priorities, body-end release and a 503 with a retry hint instead of an
//! `Overloaded` error.
//!
//! # Any request type
//!
//! [`Bulkhead`] is a `Service<R>` for every `R`, so it stacks on a broker producer's
//! `Service<PublishRequest>`, a database call or a `Service<u64>`. Two parts are HTTP's:
//! the default release ([`OnBodyEnd`] holds the slot until an HTTP response body ends),
//! so use [`release_on_response`](BulkheadBuilder::release_on_response) for any other
//! response; and [`HeaderPriority`], where a [`priority_fn`] closure reads any request.
//!
//! ```
//! use palisade_bulkhead::{BulkheadLayer, priority_fn};
//! use palisade_core::BulkheadFull;
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! /// A job for a database: its priority lane and the work.
//! #[derive(Debug)]
//! struct Job { urgent: bool, secs: u64 }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let layer = BulkheadLayer::builder()
//!     .max_concurrent(1)
//!     .priority(priority_fn(|job: &Job| usize::from(job.urgent)), vec![0, 0])
//!     .release_on_response()
//!     .build()
//!     .unwrap();
//! let db = layer.layer(service_fn(|job: Job| async move {
//!     tokio::time::sleep(Duration::from_secs(job.secs)).await;
//!     Ok::<_, std::io::Error>(job.secs)
//! }));
//! let running = tokio::spawn(db.clone().oneshot(Job { urgent: false, secs: 1 }));
//! tokio::task::yield_now().await; // holds the only slot
//! let err = db.clone().oneshot(Job { urgent: true, secs: 1 }).await.unwrap_err();
//! assert!(err.is::<BulkheadFull>());
//! assert_eq!(running.await.unwrap().unwrap(), 1);
//! assert_eq!(db.oneshot(Job { urgent: true, secs: 2 }).await.unwrap(), 2);
//! # }
//! ```
//!
//! # Example
//! ```
//! use palisade_bulkhead::BulkheadLayer;
//! use palisade_core::BulkheadFull;
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let layer = BulkheadLayer::builder().max_concurrent(1).release_on_response().build().unwrap();
//! let svc = layer.layer(service_fn(|(): ()| async {
//!     tokio::time::sleep(Duration::from_secs(1)).await;
//!     Ok::<_, std::convert::Infallible>("done")
//! }));
//! let first = tokio::spawn(svc.clone().oneshot(()));
//! tokio::task::yield_now().await; // the first call holds the only slot
//! let err = svc.clone().oneshot(()).await.unwrap_err();
//! assert!(err.is::<BulkheadFull>());
//! assert_eq!(first.await.unwrap().unwrap(), "done");
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod adaptive;
mod admission;
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
mod priority;
mod release;
mod service;

pub use adaptive::{Aimd, Gradient};
pub use admission::Permit;
pub use config::{AdaptiveConfig, BulkheadConfig, BulkheadMode};
pub use events::{BulkheadEvent, RejectReason};
pub use handle::BulkheadHandle;
pub use keyed::{KeyedBulkhead, KeyedBulkheadLayer};
pub use layer::{BulkheadBuilder, BulkheadLayer, DEFAULT_KEY_IDLE};
pub use priority::{HeaderPriority, NoPriority, Priority, PriorityFn, priority_fn};
pub use release::{BulkheadBody, OnBodyEnd, OnResponse, Release};
pub use service::Bulkhead;
