//! Keyed rate limiting (GCRA) for Tower services, in memory or shared through Redis.
//!
//! [`RateLimitLayer`] partitions requests by a key from a
//! [`KeyExtractor`](palisade_core::KeyExtractor) (peer IP, trusted `X-Forwarded-For`, API
//! key header, path, global, a closure) and checks each key against one or more
//! [`Quota`]s (rate + burst). A request must pass every quota of its [`QuotaSet`]; units
//! are only consumed when all pass. Keys can get their own quotas
//! ([tiers](RateLimitLayer::tier)).
//!
//! - **Server mode** ([`RateLimitMode::Reject`], default): a request over the limit fails with
//!   [`RateLimited`](palisade_core::RateLimited), which
//!   [`HandleRejectionsLayer`](palisade_core::HandleRejectionsLayer) answers with 429 /
//!   RESOURCE_EXHAUSTED, `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit`
//!   fields (draft-ietf-httpapi-ratelimit-headers-10; see [`headers`]); successful
//!   responses carry the fields too, and legacy `X-RateLimit-*` fields are optional.
//! - **Client mode** ([`RateLimitMode::Wait`]): a request waits for its slot instead, never past
//!   its [`Deadline`](palisade_core::Deadline) or [`max_wait`](RateLimitLayer::max_wait).
//!   A request that must wait is parked in one allocation (request, service and timer), so
//!   that the response future of a request that goes straight through stays small.
//! - **Bounded memory**: idle keys are dropped (losslessly: an idle GCRA key equals a new
//!   one) and the number of tracked keys is capped ([`RateLimitLayer::max_keys`]); 47–94
//!   bytes per tracked key whatever the key type (keys are stored as hashes), about 108
//!   measured at peak with 1,000,000 distinct keys.
//! - **Redis** (feature `redis`): the same algorithm in one Lua script, one round trip,
//!   with Redis's clock, fail-open / fail-closed / local fallback on errors; Redis Cluster
//!   with feature `redis-cluster` (one slot per decision); optional
//!   [token leases](redis::RedisBackend::lease) (one round trip for several requests).
//! - **Shadow (dry-run) mode**, for a whole layer ([`RateLimitLayer::shadow`]) or one quota
//!   ([`Quota::shadow`]): the decision is computed and recorded
//!   ([`RateLimitEvent::WouldLimit`], metric `decision="would_limit"`) but the request
//!   passes, to roll out a new limit safely.
//! - [`parse`] reads an upstream's `RateLimit` / `RateLimit-Policy` fields.
//!
//! # Any request type
//!
//! [`RateLimitLayer::any_request`] limits services of any request type (a broker
//! producer's `Service<PublishRequest>`, a database call, a `Service<u64>`). Keys come from
//! the request through a closure ([`key_fn`](palisade_core::key::key_fn)) or any
//! [`KeyExtractor`](palisade_core::KeyExtractor) for that type; quotas, tiers, both modes,
//! Redis and events are the same. The response is not touched (the `RateLimit` fields are
//! for HTTP responses), and a refusal is the same [`RateLimited`](palisade_core::RateLimited)
//! error, whose `retry_after` says when to try again.
//!
//! ```
//! use palisade_core::RateLimited;
//! use palisade_core::key::{KeyError, key_fn};
//! use palisade_ratelimit::{Quota, RateLimitLayer};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! /// A message for a broker: the tenant is the first token of the subject.
//! #[derive(Clone)]
//! struct Publish { subject: String }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let producer = service_fn(|_msg: Publish| async { Ok::<_, std::io::Error>(1_u64) });
//! let tenant = key_fn(|msg: &Publish| {
//!     msg.subject.split('.').next().filter(|t| !t.is_empty()).map(str::to_owned)
//!         .ok_or(KeyError::Invalid { what: "subject" })
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::any_request(tenant, Quota::per_second("publish", 2).unwrap()))
//!     .service(producer);
//! let msg = |s: &str| Publish { subject: s.to_owned() };
//! assert_eq!(svc.clone().oneshot(msg("acme.orders")).await.unwrap(), 1);
//! svc.clone().oneshot(msg("acme.orders")).await.unwrap();
//! let err = svc.clone().oneshot(msg("acme.invoices")).await.unwrap_err();
//! assert_eq!(err.downcast_ref::<RateLimited>().unwrap().retry_after, Duration::from_millis(500));
//! // Another tenant has its own bucket.
//! svc.oneshot(msg("globex.orders")).await.unwrap();
//! # }
//! ```
//!
//! # Algorithm
//!
//! GCRA ([`gcra`]) keeps one timestamp per key and quota. Several quotas are checked then
//! committed under one lock of the key's map entry (or in one Lua script), which
//! governor's keyed limiters cannot do across quotas, and the decision reports remaining
//! units and reset times for the headers. So the state is our own `DashMap<u64, [u64; 4]>`
//! keyed by a random-seeded hash of the key (two keys share a bucket only on a 64-bit hash
//! collision: about 3·10⁻⁸ for a million live keys, and not steerable by clients); the
//! benches compare it with governor.
//!
//! # Mutation testing
//!
//! The GCRA decision and the in-memory store are mutation-tested (51 mutants: 48 caught,
//! 2 unviable, 1 timeout, `is_allowed` → `true`, which makes refusal loops spin):
//!
//! ```text
//! cargo mutants -p palisade-ratelimit --file crates/palisade-ratelimit/src/gcra.rs \
//!     --file crates/palisade-ratelimit/src/memory.rs -j 1 --timeout 20 -- --lib --tests
//! ```
//!
//! # Example
//! ```
//! use palisade_core::{HandleRejectionsLayer, key::GlobalKey};
//! use palisade_ratelimit::{Quota, RateLimitLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let app = service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(HandleRejectionsLayer::new())
//!     .layer(RateLimitLayer::new(GlobalKey, Quota::per_minute("default", 2).unwrap()))
//!     .service(app);
//!
//! let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=2;w=60");
//! assert_eq!(res.headers()["ratelimit"], "\"default\";r=1;t=30");
//! svc.clone().oneshot(http::Request::new(())).await.unwrap();
//!
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.status(), 429);
//! assert_eq!(res.headers()["retry-after"], "30");
//! assert_eq!(res.headers()["ratelimit"], "\"default\";r=0;t=30");
//! # }
//! ```
//!
//! Put it inside `HandleRejectionsLayer` and outside expensive work (auth may go before
//! it when the key is the authenticated user). Unlike `tower::limit::RateLimit` (one global
//! window, backpressure through `poll_ready`), it is keyed, never blocks `poll_ready`, and
//! answers over-limit requests at once (server mode).
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
pub mod gcra;
pub mod headers;
mod layer;
#[cfg(feature = "redis")]
mod lease;
mod memory;
pub mod parse;
pub mod quota;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod service;

#[cfg(feature = "redis")]
pub use config::RedisConfig;
pub use config::{
    ConfiguredKey, ConfiguredKeyValue, KeyConfig, MAX_TIER_KEYS, QuotaConfig, RateLimitConfig,
    TierConfig,
};
pub use events::{FailAction, RateLimitEvent};
pub use gcra::{QuotaState, RateLimitDecision};
pub use layer::{RateLimitLayer, RateLimitMode};
pub use memory::{DEFAULT_IDLE_SWEEP, DEFAULT_MAX_KEYS};
pub use quota::{MAX_QUOTAS, MAX_WINDOW, Quota, QuotaSet};
pub use service::RateLimit;
