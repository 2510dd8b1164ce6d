//! Timeout middleware with deadline propagation.
//!
//! [`TimeoutLayer`] fails a request with [`Elapsed`](error::Elapsed) when it takes longer
//! than its timeout, dropping the inner future. The effective timeout is the smallest of:
//!
//! - the configured timeout;
//! - an incoming `grpc-timeout` header (1–8 digits and a unit `H M S m u n`; a malformed
//!   one is ignored and reported as a [`TimeoutEvent::InvalidDeadlineHeader`] at DEBUG,
//!   never a panic or a 4xx). A header sent on several lines is treated the same way
//!   (ignored, the configured timeout applies), not "first line wins": proxies disagree
//!   on which line they keep, so no line is trusted;
//! - an optional header carrying the caller's budget in milliseconds (one line, likewise);
//! - a [`Deadline`](palisade_core::Deadline) an outer layer already set.
//!
//! The effective deadline goes into the request's extensions so inner layers (retry) never
//! wait past it, and in [outbound](TimeoutLayer::outbound) mode it is written to the
//! outgoing request as `grpc-timeout`.
//!
//! Put it outside retry (one deadline covers all attempts, as gRPC and Envoy define it) and
//! inside [`HandleRejectionsLayer`](palisade_core::HandleRejectionsLayer), which turns
//! `Elapsed` into 504 / DEADLINE_EXCEEDED.
//!
//! # Any request type
//!
//! [`TimeoutLayer::any_request`] builds the layer for a service of any request type (a
//! broker producer's `Service<PublishRequest>`, a database call, a `Service<u64>`): the
//! deadline is the configured timeout alone, since such a request has no headers to carry
//! a caller's budget and no extensions to pass the [`Deadline`](palisade_core::Deadline)
//! inward. Header reading stays with [`TimeoutLayer::new`], for HTTP.
//!
//! ```
//! use palisade_core::Elapsed;
//! use palisade_timeout::TimeoutLayer;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // A database call keyed by a plain id: the slow ids take 10 s.
//! let lookup = service_fn(|id: u64| async move {
//!     if id > 100 {
//!         tokio::time::sleep(Duration::from_secs(10)).await;
//!     }
//!     Ok::<_, std::io::Error>(format!("row {id}"))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::any_request(Duration::from_secs(2)))
//!     .service(lookup);
//! assert_eq!(svc.clone().oneshot(7).await.unwrap(), "row 7");
//! let started = tokio::time::Instant::now();
//! let err = svc.oneshot(500).await.unwrap_err();
//! assert!(err.is::<Elapsed>());
//! assert_eq!(started.elapsed(), Duration::from_secs(2));
//! # }
//! ```
//!
//! # Mutation testing
//!
//! The service and its future are mutation-tested; no mutant of `src/service.rs` or
//! `src/future.rs` survives (57 mutants: 33 caught, 24 unviable):
//!
//! ```text
//! cargo mutants -p palisade-timeout --file crates/palisade-timeout/src/service.rs \
//!     --file crates/palisade-timeout/src/future.rs -j 1 --timeout 20 -- --lib --tests
//! ```
//!
//! # Example
//! ```
//! use palisade_core::{Elapsed, HandleRejectionsLayer};
//! use palisade_timeout::TimeoutLayer;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let slow = service_fn(|_req: http::Request<()>| async {
//!     tokio::time::sleep(Duration::from_secs(10)).await;
//!     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//! });
//!
//! // As a plain Tower service: the error is `Elapsed`.
//! let svc = ServiceBuilder::new().layer(TimeoutLayer::new(Duration::from_secs(2))).service(slow.clone());
//! let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
//! assert!(err.is::<Elapsed>());
//!
//! // In front of axum/hyper: HandleRejections answers 504, and a caller's shorter
//! // grpc-timeout wins over the configured 2 s.
//! let svc = ServiceBuilder::new()
//!     .layer(HandleRejectionsLayer::new())
//!     .layer(TimeoutLayer::new(Duration::from_secs(2)))
//!     .service(slow);
//! let req = http::Request::builder().header("grpc-timeout", "100m").body(()).unwrap();
//! let started = tokio::time::Instant::now();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 504);
//! assert_eq!(started.elapsed(), Duration::from_millis(100));
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
mod layer;
mod service;

pub use config::{MAX_TIMEOUT, MIN_TIMEOUT, TimeoutConfig};
pub use events::{DeadlineSource, TimeoutEvent};
pub use layer::TimeoutLayer;
pub use service::Timeout;
