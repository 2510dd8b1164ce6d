//! The shared vocabulary of Palisade's Tower middleware.
//!
//! Every pattern crate (timeout, retry, breaker, bulkhead, rate limit, idempotency, …)
//! builds on these pieces instead of writing its own:
//!
//! - [`classify`]: is a `Result<Response, Error>` a success, a failure or ignored?
//! - [`rejection`]: one typed error per refusal ([`Elapsed`], [`CircuitOpen`],
//!   [`RateLimited`], …), each knowing its HTTP and gRPC answer, and
//!   [`HandleRejectionsLayer`], which renders them so an axum `Router` stays infallible.
//! - [`key`]: which bucket a request belongs to (header, peer IP, trusted `X-Forwarded-For`,
//!   path, global, closure).
//! - [`request`]: method/path/headers/extensions over `http::Request<B>` and
//!   `reqwest::Request`, and the [`Http`](request::Http) / [`AnyRequest`] modes of layers
//!   that also take any other request type.
//! - [`event`]: typed events to listeners and `tracing`, free when nobody listens, with one
//!   vocabulary every layer's events share (layer, instance name, kind, typed fields) and
//!   live-gauge traits for handles.
//! - [`deadline`]: the request's [`Deadline`] and `grpc-timeout`.
//! - [`config`]: [`ConfigError`], naming the bad field and the allowed range.
//! - [`clock`]: [`Clock`], nanoseconds since an epoch on tokio's pausable time, for
//!   instants kept in atomics.
//! - [`body`]: [`ReplayBody`](body::ReplayBody) and [`ReadBody`](body::ReadBody), for the
//!   layers that read request bodies.
//! - [`keyed`]: [`KeyedStore`](keyed::KeyedStore), the bounded, idle-expiring per-key map
//!   that keyed layers keep their per-key state in.
//!
//! Time is `tokio::time` throughout, so every test can run under `tokio::time::pause()`.
//!
//! # Mutation testing
//!
//! Deadlines and classification are mutation-tested with the crate's own tests only (a
//! mutant of this crate would otherwise rebuild every layer); `tests/mutants.rs` pins
//! their edge cases:
//!
//! ```text
//! cargo mutants -p palisade-core --file crates/palisade-core/src/deadline.rs \
//!     --file crates/palisade-core/src/classify.rs -j 1 --timeout 20 -- --lib --tests
//! ```
//!
//! # Example
//!
//! ```
//! use palisade_core::{HandleRejectionsLayer, RateLimited};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A layer somewhere inside refuses the request with a typed rejection...
//! let inner = service_fn(|_req: http::Request<()>| async {
//!     let mut headers = http::HeaderMap::new();
//!     headers.insert("ratelimit", http::HeaderValue::from_static("\"default\";r=0;t=5"));
//!     Err::<http::Response<http_body_util::Full<bytes::Bytes>>, palisade_core::BoxError>(
//!         RateLimited::new(Duration::from_secs(5), headers, vec!["default".into()]).into(),
//!     )
//! });
//! // ...and HandleRejections answers it with the right status and headers.
//! let svc = ServiceBuilder::new().layer(HandleRejectionsLayer::new()).service(inner);
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.status(), 429);
//! assert_eq!(res.headers()["retry-after"], "5");
//! assert_eq!(res.headers()["ratelimit"], "\"default\";r=0;t=5");
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod body;
pub mod classify;
pub mod clock;
pub mod config;
pub mod cookie;
pub mod deadline;
pub mod event;
pub mod forwarded;
pub mod grpc;
mod handle;
#[macro_use]
mod macros;
pub mod header;
pub mod key;
pub mod key_config;
pub mod keyed;
pub mod rejection;
pub mod request;
pub mod response;
pub mod retry_after;
pub mod storage_key;

/// The error type Palisade services return, as in tower: rejections are boxed into it and
/// found again with `err.is::<T>()` / `downcast_ref` or [`rejection::find_rejection`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use classify::{Classifier, DefaultClassifier, ErrorsAsFailures, Outcome, classify_fn};
pub use clock::Clock;
pub use config::ConfigError;
pub use deadline::Deadline;
pub use event::{Event, InstanceName, Listeners};
pub use grpc::GrpcCode;
pub use handle::{HandleRejections, HandleRejectionsLayer, RejectionBody, ResponseFuture};
pub use key::{KeyError, KeyExtractor};
pub use key_config::{ConfiguredKey, ConfiguredKeyValue, KeyConfig};
pub use rejection::{
    AnyRejection, BulkheadFull, CircuitOpen, Elapsed, IdempotencyConflict, IdempotencyKeyInvalid,
    IdempotencyKeyMissing, IdempotencyMismatch, RateLimited, Rejection, StoreUnavailable,
    Throttled,
};
pub use request::{AnyRequest, RequestMode, RequestParts, ResponseMode, ResponseParts};
