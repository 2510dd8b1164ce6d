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
//! let charge = || http::Request::post("/charges").header("idempotency-key", "\"k1\"")
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
//!     .body(http_body_util::Full::new(bytes::Bytes::from("amount=99"))).unwrap();
//! let res = svc.ready().await.unwrap().call(other).await.unwrap();
//! assert_eq!(res.status(), 422);
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! # }
//! ```
//!
//! # Behaviour
//! - Applies to POST and PATCH by default; other methods pass through untouched.
//! - The `Idempotency-Key` header is a structured-field string (`"k1"`, parameters ignored);
//!   lenient mode (default) also accepts a bare value, strict mode refuses it. Empty, longer
//!   than 255 characters, repeated or malformed → 400
//!   ([`IdempotencyKeyInvalid`](palisade_core::IdempotencyKeyInvalid)); missing on a route with
//!   [`require_key`](IdempotencyLayer::require_key) → 400.
//! - Keys are scoped by a [`KeyExtractor`](palisade_core::KeyExtractor)
//!   ([`scope`](IdempotencyLayer::scope)): tenant, principal or API key.
//! - The fingerprint is SHA-256 over method, path and query, optional selected headers, and
//!   the body (buffered up to 1 MiB; larger → 413). Same key, other fingerprint → 422.
//! - First request: lock with a lease and a fencing token, run the handler, buffer the
//!   response, store status + allowlisted headers + body for 24 h. Retries get it back
//!   byte-for-byte with `Idempotent-Replayed: true`. 5xx are stored too unless
//!   [`store_server_errors(false)`](IdempotencyLayer::store_server_errors).
//! - While in flight → 409 ([`IdempotencyConflict`](palisade_core::IdempotencyConflict)), or
//!   a bounded [wait](IdempotencyLayer::wait_in_flight) then replay.
//! - Handler error, panic or dropped future → the lock is released so the client can retry.
//!   The lease is renewed every third of its length while the handler runs, so a crashed
//!   instance's lock expires quickly (60 s by default) without slow handlers running twice;
//!   the fencing token keeps a late finisher from overwriting a newer result.
//! - Stores: [`MemoryStore`] (bounded, TTL on `tokio::time`) and `RedisStore` (feature
//!   `redis`: one Lua script per operation, 2 round trips on a first execution, 1 on replay).
//!   [`DistributedLock`] ([`MemoryLock`], `RedisLock`) and [`InboxLayer`] reuse them.
//! - Store errors → 503 + `Retry-After` ([`StoreUnavailable`](palisade_core::StoreUnavailable)),
//!   never a second execution.
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
//! key, one boxed future for the request and one per store call).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod body;
mod config;
pub mod error;
pub mod events;
pub mod future;
mod inbox;
pub mod key;
mod layer;
mod lock;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;
mod service;
mod store;

pub use config::{IdempotencyConfig, MAX_TTL};
pub use events::IdempotencyEvent;
pub use inbox::{Inbox, InboxLayer, InboxOutcome};
pub use layer::{
    DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY, DEFAULT_STORE_RETRY_AFTER,
    DEFAULT_TTL, IdempotencyLayer,
};
pub use lock::{DistributedLock, MemoryLock};
pub use memory::{DEFAULT_MAX_ENTRIES, MemoryStore};
#[cfg(feature = "redis")]
pub use redis_store::{RedisLock, RedisStore};
pub use service::Idempotency;
pub use store::{Begin, Fingerprint, Store, StoreError, StoreFuture, StoredResponse};
