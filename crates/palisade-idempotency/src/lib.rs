//! Idempotency keys for Tower HTTP services (IETF `Idempotency-Key` draft with Stripe's
//! semantics), a distributed lock, and inbox deduplication, over memory or Redis.
//!
//! # Example
//! ```
//! use palisade_idempotency::{IdempotencyLayer, MemoryStore};
//! use palisade_core::HandleRejectionsLayer;
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//! use http_body_util::BodyExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let charges = Arc::new(AtomicUsize::new(0));
//! let c = charges.clone();
//! let handler = service_fn(move |_req: http::Request<_>| {
//!     let n = c.fetch_add(1, Ordering::SeqCst) + 1;
//!     async move {
//!         Ok::<_, std::convert::Infallible>(
//!             http::Response::builder().status(201).body(http_body_util::Full::new(bytes::Bytes::from(format!("charge {n}")))).unwrap(),
//!         )
//!     }
//! });
//! let mut svc = ServiceBuilder::new()
//!     .layer(HandleRejectionsLayer::new())
//!     .layer(IdempotencyLayer::new(MemoryStore::new()))
//!     .service(handler);
//!
//! // Keys are scoped to the caller: here its API key (`x-api-key`, hashed with `Authorization`).
//! let charge = || http::Request::post("/charges").header("idempotency-key", "\"k1\"")
//!     .header("x-api-key", "customer-1")
//!     .body(http_body_util::Full::new(bytes::Bytes::from("amount=10"))).unwrap();
//! let first = svc.ready().await.unwrap().call(charge()).await.unwrap();
//! let retry = svc.ready().await.unwrap().call(charge()).await.unwrap();
//! assert_eq!(first.status(), 201);
//! assert_eq!(retry.status(), 201);
//! assert_eq!(retry.headers()["idempotent-replayed"], "true");
//! assert_eq!(retry.into_body().collect().await.unwrap().to_bytes(), "charge 1");
//! assert_eq!(charges.load(Ordering::SeqCst), 1); // charged once
//!
//! // Same key, different payload: 422 problem+json.
//! let other = http::Request::post("/charges").header("idempotency-key", "\"k1\"")
//!     .header("x-api-key", "customer-1")
//!     .body(http_body_util::Full::new(bytes::Bytes::from("amount=99"))).unwrap();
//! let res = svc.ready().await.unwrap().call(other).await.unwrap();
//! assert_eq!(res.status(), 422);
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! # }
//! ```
//!
//! # Behaviour
//! - Applies to POST and PATCH by default; other methods pass through untouched.
//! - The `Idempotency-Key` header is a Structured Field Item: an sf-string (`"k1"`) or an
//!   sf-token (`k1`), parameters ignored (`"k1";x=1` and `k1;x=1` both mean `k1`). Anything
//!   else (`a b`, `a,b`, `@x`, `1abc`), an empty key, one longer than 255 characters or a
//!   repeated header → 400 ([`IdempotencyKeyInvalid`](palisade_core::IdempotencyKeyInvalid),
//!   whose problem `detail` says why). [`KeyMode::Strict`](key::KeyMode) accepts only the
//!   sf-string; [`KeyMode::Lenient`](key::KeyMode) accepts Stripe-style opaque keys. Missing
//!   on a route with [`require_key`](IdempotencyLayer::require_key) → 400.
//! - Keys are scoped to the caller by default: [`CredentialScope`](scope::CredentialScope)
//!   hashes `Authorization` and `x-api-key`, and a request carrying neither is refused (400).
//!   Choose another scope with [`scope`](IdempotencyLayer::scope) (tenant, principal, IP,
//!   closure) or opt out explicitly with [`global_scope`](IdempotencyLayer::global_scope).
//!   The scope is part of the store key (a stable, escaped encoding; see [`scope`]) and of
//!   the fingerprint.
//! - The fingerprint is SHA-256 over the scope and key, method, path and query, optional
//!   selected headers, and the body (buffered up to 1 MiB; larger → 413). Same key, other
//!   fingerprint → 422.
//! - First request: lock with a lease and a fencing token, then run the handler **detached
//!   from the caller** (one `tokio::spawn` per first execution; replays and pass-through
//!   never spawn): dropping the response future (a client that disconnects, an outer
//!   timeout, a `grpc-timeout`, a hedge that lost) does not stop the handler or release the
//!   key. The task buffers the response, stores status + allowlisted headers + body for
//!   24 h, and hands the response to the caller if it is still waiting. Retries get it back
//!   byte-for-byte with `Idempotent-Replayed: true`. 5xx from the handler are stored too
//!   unless [`store_server_errors(false)`](IdempotencyLayer::store_server_errors); refusals
//!   rendered by Palisade layers inside (429, 503, …) are never stored.
//! - While in flight → 409 ([`IdempotencyConflict`](palisade_core::IdempotencyConflict), problem
//!   type `urn:palisade:problem:idempotency-conflict`, so a hedging client can tell it from
//!   other conflicts and never treat it as final), or a bounded
//!   [wait](IdempotencyLayer::wait_in_flight) then replay.
//! - Handler error or panic → the key is released so the client can retry. An optional
//!   [`max_execution_time`](IdempotencyLayer::max_execution_time) abandons a handler that
//!   runs too long (released, 504). The lease is renewed every third of its length for the
//!   whole execution (handler and response body), so a crashed instance's lock expires
//!   quickly (60 s by default) without slow handlers running twice; the fencing token keeps
//!   a late finisher from overwriting a newer result.
//! - If storing the response fails after the handler ran, the caller still gets the
//!   response, the key stays locked (lease renewed) and the write is retried with backoff;
//!   after [`STORE_ATTEMPTS`] failures the key is marked "outcome unknown" and retries get
//!   500 [`OutcomeUnknown`](error::OutcomeUnknown) (problem type
//!   `urn:palisade:problem:idempotency-outcome-unknown`) instead of a second execution
//!   (events [`StoreFailed`](IdempotencyEvent::StoreFailed),
//!   [`OutcomeUnknown`](IdempotencyEvent::OutcomeUnknown)).
//! - Stores: [`MemoryStore`] (bounded by entries and bytes, TTL on `tokio::time`) and
//!   `RedisStore` (feature `redis`: one Lua script per operation, 2 round trips on a first
//!   execution, 1 on replay). [`DistributedLock`] ([`MemoryLock`], `RedisLock`) and
//!   [`InboxLayer`] reuse them; the inbox renews its lease while the consumer runs.
//! - Store errors before the handler → 503 + `Retry-After`
//!   ([`StoreUnavailable`](palisade_core::StoreUnavailable)), never an execution.
//!
//! Rejections are returned as typed errors in a [`BoxError`](palisade_core::BoxError); put
//! [`HandleRejectionsLayer`](palisade_core::HandleRejectionsLayer) outside to render them as
//! problem+json. Place this layer inside authentication (the scope needs the principal) and
//! outside anything that should not be repeated.
//!
//! Neither tower nor tower-http has an equivalent; the nearest relatives are HTTP caches, which never store POST results.
//!
//! # Performance
//! Pass-through requests cost a method check and a header lookup, with no allocation. The
//! keyed path buffers bodies and talks to the store, so it allocates (the body, the scoped
//! key, one boxed future for the request and one per store call); a first execution also
//! spawns one task and a oneshot channel. Replays do not spawn.
//!
//! # Cargo features
//! | feature | what |
//! |---|---|
//! | `serde` | `Deserialize` for [`IdempotencyConfig`] |
//! | `redis` | `RedisStore`, `RedisLock` |
//!
//! With axum, the handler behind this layer needs axum's `Body` back: use the facade's
//! `idempotency_with` (feature `axum` of `palisade`, or `palisade-core/axum`), which needs
//! `FromReplayBody` for axum's body, implemented only with the `axum` feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod body;
mod config;
pub mod error;
pub mod events;
pub mod future;
mod inbox;
pub mod key;
mod layer;
mod lease;
mod lock;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;
pub mod scope;
mod service;
mod store;

pub use body::ReplayBody;
pub use config::{IdempotencyConfig, MAX_TTL, ScopeConfig, ScopeName};
pub use events::IdempotencyEvent;
pub use inbox::{Inbox, InboxLayer, InboxOutcome};
pub use layer::{
    DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY, DEFAULT_STORE_RETRY_AFTER,
    DEFAULT_TTL, IdempotencyLayer, MAX_BODY, MAX_KEY_LEN, MAX_STORE_RETRY_AFTER,
};
pub use lease::STORE_ATTEMPTS;
pub use lock::{DistributedLock, MemoryLock};
pub use memory::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_IN_FLIGHT, MemoryStore, RECORD_OVERHEAD,
};
#[cfg(feature = "redis")]
pub use redis_store::{RedisLock, RedisStore};
pub use service::Idempotency;
pub use store::{Begin, Fingerprint, Store, StoreError, StoreFuture, StoredResponse};
