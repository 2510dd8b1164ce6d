//! Retry middleware for HTTP and gRPC Tower services, safe by default.
//!
//! Unlike tower's `Retry` (you write the policy) this comes ready: backoff with jitter
//! ([`Backoff`], AWS formulas), server-sent delays (`Retry-After`, `grpc-retry-pushback-ms`),
//! idempotent methods only unless a request carries an `Idempotency-Key`, request bodies
//! buffered and replayed, the request's [`Deadline`](palisade_core::Deadline) respected,
//! and a shared [budget](budget) so retries cannot multiply an outage.
//!
//! Put it inside the timeout (one deadline covers all attempts) and outside the breaker
//! (a retry that meets an open breaker stops at once).
//!
//! # Example
//! ```
//! use palisade_retry::{Backoff, RetryLayer};
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! let flaky = service_fn(move |_req: http::Request<_>| {
//!     let n = c.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let status = if n < 2 { 503 } else { 200 };
//!         Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(()).unwrap())
//!     }
//! });
//! let svc = RetryLayer::builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::Exponential, Duration::from_millis(100), 2.0, Duration::from_secs(1))
//!     .build()
//!     .unwrap()
//!     .layer(flaky);
//! let req = http::Request::get("/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod backoff;
pub mod body;
pub mod budget;
pub mod events;
pub mod future;
mod layer;
pub mod policy;
mod service;

pub use backoff::{Backoff, Schedule};
pub use body::RetryBody;
pub use budget::{GrpcThrottle, RetryBudget, Tps};
pub use events::RetryEvent;
pub use layer::{RetryBuilder, RetryLayer};
pub use service::Retry;
