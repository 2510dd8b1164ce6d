//! Traffic splitting for Tower HTTP services: canary with automatic rollback, blue-green,
//! strangler fig and CQRS read/write split.
//!
//! # Example
//! ```
//! use http::{Request, Response, HeaderName};
//! use palisade_traffic::{OverrideAccess, Rule, Split};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Two arms of the same type (box or `tower::util::Either` arms of different types).
//! let arm = |name: &'static str| service_fn(move |_req: Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(Response::new(name))
//! });
//! let (split, handle) = Split::builder()
//!     .arm("stable", arm("v1"))
//!     .arm("canary", arm("v2"))
//!     .weights([100, 0])
//!     .rule(Rule::path_prefix("/orders", "canary")) // strangler fig: /orders moved
//!     // testers pick an arm by hand, with the shared secret
//!     .override_header(HeaderName::from_static("x-arm"))
//!     .override_access(OverrideAccess::secret(
//!         HeaderName::from_static("x-override-token"), "s3cret-s3cret-s3cret").unwrap())
//!     .build()
//!     .unwrap();
//!
//! let get = |path: &str| Request::get(path).body(()).unwrap();
//! assert_eq!(split.clone().oneshot(get("/users")).await.unwrap().into_body(), "v1");
//! assert_eq!(split.clone().oneshot(get("/orders/7")).await.unwrap().into_body(), "v2");
//! let forced = Request::get("/users").header("x-arm", "canary")
//!     .header("x-override-token", "s3cret-s3cret-s3cret").body(()).unwrap();
//! assert_eq!(split.clone().oneshot(forced).await.unwrap().into_body(), "v2");
//! // without the secret, the override is ignored
//! let forced = Request::get("/users").header("x-arm", "canary").body(()).unwrap();
//! assert_eq!(split.clone().oneshot(forced).await.unwrap().into_body(), "v1");
//!
//! // Blue-green: switch everything at once (in-flight requests finish where they started).
//! handle.switch_to("canary").unwrap();
//! assert_eq!(split.clone().oneshot(get("/users")).await.unwrap().into_body(), "v2");
//! # }
//! ```
//!
//! # Routing order
//! 1. **Override**: a header ([`SplitBuilder::override_header`]) or cookie
//!    ([`SplitBuilder::override_cookie`]) naming an arm, off by default. Enabling one
//!    requires [`SplitBuilder::override_access`]: a shared secret, trusted peer networks,
//!    or explicitly anyone ([`OverrideAccess`]); other requests are routed as if they had
//!    no override. Requests routed by an override never count in the per-arm statistics,
//!    so no client can push a [`CanaryController`] to promote or roll back.
//! 2. **Rules**: the first matching [`Rule`]: path prefix (strangler fig: move routes from
//!    the legacy arm to the new one one by one, at runtime via [`SplitHandle::set_rules`]) or
//!    method set (CQRS: [`Rule::reads`] to a replica arm, everything else by weight to primary).
//! 3. **Weights, sticky**: with [`SplitBuilder::sticky`] (any core `KeyExtractor`, e.g.
//!    `HeaderKey` for a user id) a key always lands in the same of 10,000 buckets
//!    (`xxh64`, seed 0, of the key's `Hash` bytes, modulo 10,000); arm `i` owns a contiguous
//!    bucket range in arm order, so with the canary last, growing its weight never moves a
//!    key from the canary back to stable.
//! 4. **Weights, random**: a lock-free seedable splitmix64 source.
//!
//! Drained arms ([`SplitHandle::drain`]) get no traffic from any step.
//!
//! # Canary analysis
//! Every response is classified (core [`DefaultClassifier`](palisade_core::DefaultClassifier)
//! by default) and timed into per-arm atomic counters and a fixed 32-bucket latency
//! histogram (no allocation per request). A [`CanaryController`] compares the canary's
//! window with the stable arm's on each [`tick`](CanaryController::tick) and advances
//! through [`CanaryConfig::steps`], or rolls back to 0 % when the canary's error rate
//! exceeds stable's by [`CanaryConfig::max_error_rate_increase`] over at least
//! [`CanaryConfig::min_samples`] calls, or its p99 exceeds [`CanaryConfig::max_p99`].
//!
//! # Shadow traffic
//! [`ShadowLayer`] copies requests (body buffered up to a limit, bounded concurrency) to a
//! candidate service in a background task; its status is compared with the primary's in a
//! [`TrafficEvent::ShadowCompared`] event and never returned. Mirroring allocates (the
//! spawned task and the buffered body); requests that are not mirrored do not.
//!
//! # Where it goes
//! `Split` is a leaf-level router: put resilience layers (timeout, breaker, retry) inside each
//! arm so each upstream gets its own state, and rejection handling outside the split.
//! There is no Tower equivalent: it is closest to tower's `Steer`, with weights, stickiness,
//! runtime control and health analysis (anchors: Flagger, Argo Rollouts).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod access;
mod canary;
mod config;
pub mod events;
pub mod future;
mod handle;
mod rng;
mod route;
pub mod shadow;
mod split;
mod stats;

pub use access::{MAX_SECRET_LEN, MIN_SECRET_LEN, OverrideAccess};
pub use canary::{
    CanaryConfig, CanaryController, CanaryState, INTERVAL_RANGE, MAX_MIN_SAMPLES, MAX_P99, Tick,
};
pub use config::{OverrideAccessConfig, RuleConfig, SplitConfig};
pub use events::{RollbackReason, TrafficEvent};
pub use handle::SplitHandle;
/// The value of a cookie, one pair of enclosing double quotes removed (how the override
/// cookie is read); palisade-core's, re-exported.
pub use palisade_core::cookie::cookie_value_unquoted as cookie_value;
pub use route::{BUCKETS, Match, Route, RouteReason, Rule, bucket_of};
pub use shadow::{ReplayBody, Shadow, ShadowBody, ShadowLayer};
pub use split::{Split, SplitBuilder};
pub use stats::ArmSnapshot;
