//! Retry middleware for HTTP clients (and [any request type](#any-request-type)): jittered
//! backoff, `Retry-After` and gRPC pushback, safe-by-default methods, request body replay
//! and a retry budget shared by all clones.
//!
//! [`RetryLayer`] wraps a `Service<http::Request<ReplayBody<B>>>` (hyper-util's client, an
//! axum/tower service, …) and retries an attempt the [`Predicate`] classifies as a
//! retryable failure. Unlike tower's `Retry` no policy has to be written, and unlike
//! tower-resilience's retry it replays request bodies and refuses to retry unsafe methods.
//!
//! - **What is retried** ([`DefaultPredicate`]): any inner error (connect refused/reset,
//!   a per-attempt [`Elapsed`](palisade_core::Elapsed)), HTTP 502/503/504 and 429; 429 and 503
//!   wait for `Retry-After` (seconds or HTTP-date) when present; gRPC UNAVAILABLE in response
//!   headers, waiting exactly `grpc-retry-pushback-ms` (negative or malformed: stop). A
//!   server-sent delay above the max backoff means give up, not wait. Replace it with
//!   [`RetryLayer::predicate`].
//! - **Safe by default**: only GET, HEAD, OPTIONS, TRACE, PUT and DELETE (RFC 9110
//!   §9.2.2) and requests carrying an `Idempotency-Key` header are retried; POST/PATCH only
//!   with [`RetryLayer::retry_unsafe_methods`]. A request that cannot be retried is passed
//!   through untouched: its body is never buffered.
//! - **Bodies** are buffered up to [`body_limit`](RetryLayer::body_limit) (64 KiB) and
//!   replayed byte for byte; a larger body is sent once (streaming on from what was read)
//!   and [`RetryEvent::BodyTooLarge`] is emitted.
//! - **Backoff**: [`Backoff`] (constant, exponential, full/equal/decorrelated jitter), seedable.
//! - **Deadline**: an attempt whose backoff would end at or after the request's
//!   [`Deadline`](palisade_core::Deadline) is never started.
//! - **Hedging** ([`HedgeLayer`]): after a fixed delay or a latency percentile learned from
//!   recent calls, send another copy of a slow request; the first acceptable answer wins,
//!   the others are dropped. Only safe methods (GET, HEAD, OPTIONS, TRACE) are hedged
//!   unless [`HedgeLayer::hedge_unsafe_methods`] is set, and a 409 "still in flight" from
//!   an `Idempotency-Key` server is never final while another copy is outstanding.
//! - **Budget** ([`budget`]): Finagle/tower [`TpsBudget`] by default, or gRPC
//!   [`RetryThrottle`]; shared by every clone, or one per upstream host
//!   ([`KeyedBudget`](budget::KeyedBudget), bounded).
//! - **Adaptive throttling** ([`throttle`]): the SRE book's client-side throttle; sheds
//!   requests locally while the upstream rejects most of them, so the client sends about
//!   `k` × what the upstream accepts.
//!
//! Place it inside the timeout layer (one deadline covers all attempts) and outside any
//! per-attempt layers. The response future is a named state machine.
//!
//! # Any request type
//!
//! [`RetryLayer::any_request`] retries services of any request type that can be sent
//! again ([`ReplayRequest`]: every `Clone` type, or your own impl): a broker producer's
//! `Service<PublishRequest>`, a database call, a `Service<u64>`. The loop, [`Backoff`],
//! [`budget`], [`RetryEvent`]s and [`per_attempt_timeout`](RetryLayer::per_attempt_timeout)
//! are the HTTP path's; what differs:
//!
//! - what is retried is the user's: by default every `Err` ([`ErrorsAsFailures`](palisade_core::ErrorsAsFailures),
//!   honouring a rejection's own `retry_after`) and no `Ok`; replace it with
//!   [`predicate`](RetryLayer::predicate) ([`predicate_fn`]) or
//!   [`classifier`](RetryLayer::classifier) (a [`classify_fn`](palisade_core::classify_fn));
//! - the request is sent again by [`ReplayRequest::replay`] (a clone), made in `call`
//!   before the first attempt, as tower's `Policy::clone_request`;
//! - there is no method to say a request is unsafe to repeat: make it idempotent (a
//!   message id the broker deduplicates) or keep one attempt;
//! - no [`Deadline`](palisade_core::Deadline) travels in such a request; an outer
//!   timeout still bounds all attempts (palisade-timeout's `TimeoutLayer::any_request`). [`HedgeLayer`] stays
//!   HTTP-only.
//!
//! Its cost on the success path is that of tower's `Retry` with a shared budget on the
//! same request: on a `Service<u64>`, 47 ns per call with the default [`TpsBudget`] against
//! 42 ns for tower's `Retry` with tower's `TpsBudget`, and 14 ns with
//! [`no_budget`](RetryLayer::no_budget) against 1 ns for a tower policy without shared
//! state (the difference is the reference count of the layer's shared state, which the
//! response future holds; no allocation either way). `benches/retry.rs`, group
//! `retry_any_request`:
//!
//! ```text
//! cargo bench -p palisade-retry --bench retry -- retry_any_request --warm-up-time 1 --measurement-time 3
//! ```
//!
//! ```
//! use palisade_core::BoxError;
//! use palisade_retry::{Backoff, Decision, RetryEvent, RetryLayer, RetryReason, predicate_fn};
//! use std::sync::{Arc, Mutex, atomic::{AtomicU32, Ordering}};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // A broker client that is unavailable twice, then confirms with a sequence number.
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! let publish = service_fn(move |msg: (String, u64)| {
//!     let n = c.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if n < 2 { Err::<u64, BoxError>("unavailable".into()) } else { Ok(msg.1 + 1000) }
//!     }
//! });
//! let retries = Arc::new(Mutex::new(Vec::new()));
//! let log = retries.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(
//!         RetryLayer::any_request()
//!             .max_attempts(3)
//!             .backoff(Backoff::constant(Duration::from_millis(10)))
//!             .on_event(move |e| log.lock().unwrap().push(e.clone())),
//!     )
//!     .service(publish);
//! assert_eq!(svc.oneshot(("orders".to_owned(), 7)).await.unwrap(), 1007);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert!(matches!(
//!     retries.lock().unwrap()[..],
//!     [RetryEvent::Attempt { n: 2, reason: RetryReason::Error, .. }, RetryEvent::Attempt { n: 3, .. }]
//! ));
//!
//! // Your own rule: a sequence number of 0 means "not stored", retry it; errors are final.
//! let _layer = RetryLayer::any_request().predicate(predicate_fn(|r: Result<&u64, &BoxError>| {
//!     match r {
//!         Ok(0) => Decision::Retry { reason: RetryReason::Response, after: None },
//!         Ok(_) => Decision::Success,
//!         Err(_) => Decision::Return,
//!     }
//! }));
//! # }
//! ```
//!
//! # Mutation testing
//!
//! The backoff, budgets and default predicate are mutation-tested
//! (`tests/mutants.rs` and the unit tests pin what the other tests left open); the
//! equivalent mutants are listed, with their reasons, in the workspace's
//! `.cargo/mutants.toml`:
//!
//! ```text
//! cargo mutants -p palisade-retry --file crates/palisade-retry/src/backoff.rs \
//!     --file crates/palisade-retry/src/budget.rs --file crates/palisade-retry/src/policy.rs \
//!     -j 1 --timeout 20 -- --lib --tests
//! ```
//!
//! # Allocations
//!
//! A request that succeeds at its first attempt costs no allocation of the layer's own in
//! the common case (a GET built from strings, a PUT with a `Full` body, no extensions;
//! checked by `tests/allocs.rs`):
//!
//! - the first attempt is sent with the original request head, not a copy. What a retry
//!   needs is copied as bytes (URI, header names and values) into a buffer reused from a
//!   small per-thread pool; only a retry parses it back into a new head, and allocates;
//! - a body that is already complete (`Empty`, `Full`, a collected body) is read in
//!   `call`, so the request goes out at once; the buffered bytes are shared, not copied;
//! - the backoff timer is boxed only when a retry needs it (and reused across retries);
//! - events are built only when a listener is set, and only on retries and give-ups;
//! - budget deposits are atomic adds; the inner service clone kept for retries is what
//!   the service's `Clone` costs (hyper's and reqwest's clients: reference counts).
//!
//! What still allocates when no retry happens:
//!
//! - `http::Extensions::clone` of a request that carries extensions (as every axum or hyper
//!   server request does): its map and one box per value. http has no way to copy
//!   extensions into a reused buffer, and a retry must see the same extensions;
//! - the first clone of a body chunk held in a `Vec`-backed `Bytes` (`Bytes::from(vec)`,
//!   `Full::from(String)`): `bytes` allocates its shared header then. Static and
//!   hyper-received bodies are already shared;
//! - a body still streaming when `call` returns: its read state is boxed (it holds the
//!   head, 224 bytes, which would otherwise grow every response future);
//! - a body of several chunks: gathered into one `BytesMut`;
//! - [`per_attempt_timeout`](RetryLayer::per_attempt_timeout), when set: one boxed
//!   `tokio::time::Sleep` per request (reused by every attempt and backoff);
//! - trailers (rare): copied per attempt;
//! - a non-standard method longer than 15 bytes (`Method::clone`);
//! - the pool's buffers, on a thread's first requests or when more requests are in
//!   flight on a thread than it has buffers (at most 32 are kept per thread).
//!
//! # Example
//! ```
//! use palisade_retry::{Backoff, ReplayBody, RetryLayer};
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! // Fails twice with 503, then echoes the body.
//! let upstream = service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
//!     let n = c.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let body = req.into_body().collect().await?.to_bytes();
//!         let status = if n < 2 { 503 } else { 200 };
//!         Ok::<_, palisade_core::BoxError>(http::Response::builder().status(status).body(body).unwrap())
//!     }
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new().max_attempts(3).backoff(Backoff::constant(Duration::from_millis(10))))
//!     .service(upstream);
//!
//! let req = http::Request::put("/x").body(Full::new(Bytes::from("hello"))).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!((res.status(), res.body().as_ref()), (http::StatusCode::OK, &b"hello"[..]));
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//!
//! // POST without an Idempotency-Key is not retried.
//! calls.store(0, Ordering::SeqCst);
//! let req = http::Request::post("/x").body(Full::new(Bytes::from("pay"))).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), 503);
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod any;
mod attempts;
pub mod backoff;
mod body;
pub mod budget;
mod config;
mod decide;
pub mod error;
pub mod events;
pub mod future;
mod head;
pub mod hedge;
mod latency;
mod layer;
pub mod policy;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
mod service;
pub mod throttle;
mod timer;

pub use self::any::ReplayRequest;
pub use self::backoff::{Backoff, BackoffKind};
pub use self::body::{ReplayBody, RetryBody};
pub use self::budget::{Budget, RetryThrottle, TpsBudget};
pub use self::config::{BudgetKind, HedgeConfig, RetryConfig};
pub use self::events::{GiveUpReason, RetryEvent, RetryReason, ThrottleEvent};
pub use self::hedge::{Hedge, HedgeBuilder, HedgeLayer};
pub use self::layer::{DEFAULT_BODY_LIMIT, RetryLayer};
pub use self::policy::{Decision, DefaultPredicate, FromClassifier, Predicate, predicate_fn};
pub use self::service::Retry;
pub use self::throttle::{AdaptiveThrottle, AdaptiveThrottleConfig, AdaptiveThrottleLayer};
