//! A shared HTTP cache (RFC 9111, RFC 5861, RFC 9213) as Tower middleware.
//!
//! [`CacheLayer`] stores responses of `GET` requests in a [`CacheStore`] — by default a
//! [`MemoryStore`] on `moka`, bounded by bytes — and answers later requests from it while
//! the stored response is fresh. It behaves as a *shared* cache (a reverse proxy's):
//!
//! - **Storing** (RFC 9111 §3): only `GET` responses with a final status other than 206 and
//!   304; never with `no-store` (request or response) or `private`; an answer to a request
//!   with `Authorization` only with `public`, `s-maxage` or `must-revalidate`; only with
//!   explicit freshness (`max-age`, `s-maxage`, `Expires`), `public`, or a heuristically
//!   cacheable status; never with `Vary: *`. Bodies over
//!   [`max_body_bytes`](CacheLayer::max_body_bytes) stream through uncached.
//! - **Freshness** (§4.2): `s-maxage` > `max-age` > `Expires` − `Date`; heuristic freshness
//!   (10 % of the time since `Last-Modified`) only when turned on with
//!   [`heuristic`](CacheLayer::heuristic). Invalid or repeated freshness information counts
//!   as stale. `Age` is computed per §4.2.3 (upstream `Age`, `Date`, request and response
//!   times) and sent on every response served from storage; `Date` is kept as stored.
//! - **Request directives** (§5.2.1): `max-age`, `min-fresh`, `max-stale`, `no-cache`,
//!   `no-store`, `only-if-cached` (504 when nothing usable is stored).
//! - **`Vary`** (§4.1): the request's values of each named field, normalised (elements
//!   trimmed, lines joined), select among up to [`max_variants`](CacheLayer::max_variants)
//!   variants.
//! - **Validation** (§4.3): a stale or `no-cache` response is validated with `If-None-Match`
//!   / `If-Modified-Since`; a 304 updates the stored header fields (§3.2) and the stored
//!   response is served. A client's own conditional request is answered with 304 from
//!   storage.
//! - **Invalidation** (§4.4): a 2xx/3xx answer to an unsafe method removes the target URI
//!   and same-origin `Location`/`Content-Location` URIs.
//! - **`stale-if-error`** (RFC 5861 §4, in the response or the request): when validation
//!   gets a 500, 502, 503, 504 or an error (a timeout, a Palisade rejection from a layer
//!   inside), a stale copy within the window is served instead. `must-revalidate`,
//!   `proxy-revalidate`, `s-maxage` and `no-cache` forbid serving stale.
//! - **`stale-while-revalidate`** (RFC 5861 §3): within the window a stale copy is served
//!   at once and one background refresh per key runs (a `tokio::spawn`ed conditional
//!   request; the request body type must implement `Default`, as `()`, `Full` and axum's
//!   `Body` do).
//! - **Coalescing** (on by default, [`coalesce`](CacheLayer::coalesce)): concurrent misses
//!   of one key make a single upstream call; the other requests wait for it and are then
//!   answered from storage (or go upstream on their own when its response was not stored).
//!   A waiting request that is dropped leaves the call alone; when the call's own request is
//!   dropped, a waiting request takes over. [`CoalesceLayer`] does the same for any
//!   service, sharing the response itself instead of the stored copy.
//! - **Ranges** (RFC 9110 §14): a single `bytes` range of a stored complete 200 is answered
//!   with 206 (416 when unsatisfiable; `If-Range` honoured); several ranges get the full
//!   200. Partial responses are not stored.
//! - **Targeted fields** (RFC 9213): when a response carries `CDN-Cache-Control` (or the
//!   field set with [`targeted_field`](CacheLayer::targeted_field)), its directives replace
//!   those of `Cache-Control` for this cache.
//!
//! - **Storage**: [`MemoryStore`] (moka, bounded by the bytes entries really occupy, with
//!   [`CacheEvent::Evicted`] events and a bytes-in-use gauge), or with feature `redis` the
//!   `RedisStore` (shared between processes; `SET … PX`, value size cap, key prefix).
//!
//! Time is tokio's clock (tests run on paused time); wall-clock fields relate to it through
//! a [`Clock`]. The primary key is host, path and query (plus any
//! [`key_header`](CacheLayer::key_header), e.g. a tenant id); its full text is stored and
//! compared, so a hash collision is a miss, never a wrong answer.
//!
//! Where it sits: outside the timeout, retry and breaker layers (so that their rejections
//! reach `stale-if-error`), inside `HandleRejections`.
//!
//! # Any request type
//!
//! The HTTP cache ([`CacheLayer`]) and the coalescer ([`CoalesceLayer`]) take
//! `http::Request`s and answer `http::Response`s only: their keys are the method, host,
//! path and query, and they store and share response bodies; the fallback
//! ([`FallbackLayer`]) takes any request type but answers an HTTP response. For any other
//! request type (a database call, a broker's reply, a `Service<u64>`) use [`ValueCache`]
//! inside the service: cache-aside with a TTL, concurrent loads of one key coalesced into
//! one call.
//!
//! ```
//! use palisade_cache::ValueCache;
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//! use std::time::Duration;
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let loads = Arc::new(AtomicUsize::new(0));
//! let l = loads.clone();
//! let cache: ValueCache<u64, String> = ValueCache::new(10_000);
//! // A `Service<u64>` (a user lookup) that loads through the cache.
//! let users = service_fn(move |id: u64| {
//!     let (cache, l) = (cache.clone(), l.clone());
//!     async move {
//!         cache
//!             .get_or_load(id, Duration::from_secs(60), || async move {
//!                 l.fetch_add(1, Ordering::SeqCst);
//!                 Ok::<_, std::io::Error>(format!("user {id}"))
//!             })
//!             .await
//!     }
//! });
//! let (a, b) = tokio::join!(users.clone().oneshot(7), users.clone().oneshot(7));
//! assert_eq!((a.unwrap(), b.unwrap()), ("user 7".to_owned(), "user 7".to_owned()));
//! assert_eq!(users.oneshot(7).await.unwrap(), "user 7");
//! assert_eq!(loads.load(Ordering::SeqCst), 1); // one load for three calls
//! # }
//! ```
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use palisade_cache::CacheLayer;
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let mut svc = ServiceBuilder::new()
//!     .layer(CacheLayer::memory(64 << 20)) // 64 MiB
//!     .service(service_fn(move |_req: http::Request<()>| {
//!         counter.fetch_add(1, Ordering::SeqCst);
//!         async {
//!             Ok::<_, std::convert::Infallible>(
//!                 http::Response::builder()
//!                     .header("cache-control", "max-age=60")
//!                     .body(Full::new(Bytes::from_static(b"hello")))
//!                     .unwrap(),
//!             )
//!         }
//!     }));
//! for _ in 0..3 {
//!     let req = http::Request::get("http://example.com/a").body(()).unwrap();
//!     let res = svc.ready().await.unwrap().call(req).await.unwrap();
//!     assert_eq!(res.status(), 200);
//! }
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # }
//! ```
//!
//! # Spawning a call
//!
//! `tokio::spawn(cache.oneshot(req))` and an `async move` block doing
//! `cache.ready().await?.call(req).await` both work. `cache.oneshot(req).await` inside an
//! `async move` block does not compile ("higher-ranked lifetime error") when the inner
//! service's error holds a trait object (`BoxError`): the cache boxes its miss path into a
//! `'static` future, so its `Service` impl asks `S: 'static`, which rustc cannot prove again
//! inside an async block for a type holding `dyn Error + 'static`. A rustc limit; the two
//! forms above avoid it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod aside;
pub mod body;
pub mod coalesce;
mod config;
pub mod directives;
pub mod events;
pub mod fallback;
mod flight;
pub mod freshness;
pub mod future;
mod key;
mod layer;
mod memory;
mod policy;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis_store;
pub mod refreshed;
mod service;
pub mod store;

pub use aside::{LoadFailed, ValueCache, WarmOutcome};
pub use body::CacheBody;
pub use coalesce::{Coalesce, CoalesceLayer, LeaderFailed};
pub use config::{CacheConfig, MAX_BODY_BYTES, MAX_MAX_BYTES, MIN_MAX_BYTES};
pub use events::CacheEvent;
pub use fallback::{Fallback, FallbackEvent, FallbackLayer, FallbackReason};
pub use freshness::{Clock, Heuristic};
pub use layer::{CacheLayer, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TTL, DEFAULT_MAX_VARIANTS};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use refreshed::Refreshed;
pub use service::Cache;
pub use store::{CacheStore, Entry, StoredResponse};
