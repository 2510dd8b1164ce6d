//! Health checks for Tower services: registered checks run in the background with a
//! timeout, their results are cached, and probes read the cache, so a probe never fans out
//! to slow dependencies.
//!
//! - [`HealthRegistry`]: checks with a name (`component:measurement`), a critical flag, a
//!   timeout and an interval. A check that hangs is abandoned after its timeout and
//!   reported as `fail` with output `"timed out"`.
//! - Aggregation: any *critical* check failing → `fail` (HTTP 503); a
//!   non-critical check failing or any check warning → `warn` (HTTP 200); else `pass`.
//! - [`HealthService`]: `/livez` (no dependency checks), `/readyz` and `/health` as
//!   `application/health+json` (draft-inadarei-api-health-check), as a Tower service or
//!   (feature `axum`) an axum `Router`.
//! - [`GrpcHealth`] (feature `tonic`): `grpc.health.v1` per service name through
//!   tonic-health, `Watch` updates on change.
//!
//! Wire anything in with a closure: a circuit breaker's state through [`check_sync`], a
//! database ping through [`check_fn`].
//!
//! # Example
//!
//! ```
//! use palisade_health::{HealthCheck, HealthRegistry, CheckOutcome, Status, check_fn, check_sync};
//! use tower::ServiceExt;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let registry = HealthRegistry::new();
//! registry.register(
//!     HealthCheck::new("postgres:responseTime", check_fn(|| async { Ok::<(), std::io::Error>(()) }))
//!         .critical(true)
//!         .timeout(Duration::from_millis(500)),
//! ).unwrap();
//! registry.register(
//!     HealthCheck::new("payments-breaker:state", check_sync(|| CheckOutcome::warn("circuit open"))),
//! ).unwrap();
//!
//! let res = registry.service()
//!     .oneshot(http::Request::get("/readyz").body(()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 200); // a non-critical check warns: still ready
//! assert_eq!(res.headers()["content-type"], "application/health+json");
//! assert_eq!(registry.report().await.status, Status::Warn);
//! # }
//! ```
//!
//! In production call [`HealthRegistry::spawn_background`] once at startup and keep the
//! returned handle alive.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod builtin;
mod check;
mod config;
mod entry;
#[cfg(feature = "tonic")]
mod grpc;
mod registry;
mod report;
mod service;

pub use builtin::{CircuitState, breaker_check, saturation_check};
#[cfg(feature = "redis")]
pub use builtin::{REDIS_UNAVAILABLE, redis_check};
pub use check::{
    Check, CheckFuture, CheckOutcome, FnCheck, Status, SyncCheck, check_fn, check_sync,
};
pub use config::{CheckConfig, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, HealthCheck};
pub use entry::{PANICKED, TIMED_OUT};
#[cfg(feature = "tonic")]
pub use grpc::GrpcHealth;
pub use registry::{BackgroundTask, HealthRegistry};
pub use report::{CheckReport, HEALTH_JSON, HealthReport, PENDING, aggregate};
pub use service::{HealthService, ResponseFuture, health_response};
