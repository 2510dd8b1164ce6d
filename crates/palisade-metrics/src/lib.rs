//! RED metrics for Tower services and for every Palisade layer's events, through the
//! [`metrics`] facade (any recorder: Prometheus, OpenTelemetry bridges, StatsD, …).
//!
//! - [`MetricsLayer`]: `palisade_requests_total{route, outcome}`,
//!   `palisade_request_duration_seconds{route}` and `palisade_requests_in_flight{route}`.
//!   `outcome` is `success` / `failure` (the classifier), the rejection kind
//!   (`timeout`, `circuit_open`, `bulkhead_full`, `rate_limited`, …) or
//!   `idempotent_replay` (a response replayed by the idempotency layer). Labels are bounded:
//!   route templates (axum `MatchedPath`, feature `axum`) or a fixed name, never raw paths.
//! - [`EventMetrics`]: a listener counting every event of every layer as
//!   `palisade_events_total{layer, event}`.
//! - Feature `prometheus`: [`install_prometheus`] and [`PrometheusService`] (`/metrics`).
//!
//! Metric handles are registered with the recorder that is installed when a route sees
//! its first request (and cached), so install the recorder before serving.
//!
//! # Example
//!
//! ```
//! use palisade_core::{BoxError, RateLimited};
//! use palisade_metrics::MetricsLayer;
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use tower::{Layer, ServiceExt, service_fn};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let _guard = metrics::set_default_local_recorder(&recorder);
//!
//! let svc = MetricsLayer::with_route("checkout").layer(service_fn(|req: http::Request<()>| async move {
//!     if req.uri().path() == "/limited" {
//!         return Err::<http::Response<()>, BoxError>(
//!             RateLimited::new(Duration::from_secs(1), http::HeaderMap::new(), vec![]).into(),
//!         );
//!     }
//!     Ok(http::Response::new(()))
//! }));
//! svc.clone().oneshot(http::Request::new(())).await.unwrap();
//! let limited = http::Request::get("/limited").body(()).unwrap();
//! assert!(svc.oneshot(limited).await.is_err());
//!
//! let snapshot = snapshotter.snapshot().into_hashmap();
//! let count = |outcome: &str| snapshot.iter().find_map(|(k, (_, _, v))| {
//!     let k = k.key();
//!     (k.name() == "palisade_requests_total"
//!         && k.labels().any(|l| l.key() == "outcome" && l.value() == outcome))
//!         .then(|| match v { DebugValue::Counter(c) => *c, _ => 0 })
//! });
//! assert_eq!(count("success"), Some(1));
//! assert_eq!(count("rate_limited"), Some(1));
//! # }
//! ```
//!
//! OpenTelemetry: any `metrics` recorder works, e.g. an OTLP bridge crate; a dedicated
//! `otel` feature is left for later.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod events;
pub mod future;
mod layer;
mod names;
#[cfg(feature = "prometheus")]
mod prometheus;
mod route;
mod service;

pub use config::{MAX_ROUTES_LIMIT, MetricsConfig};
pub use events::EventMetrics;
pub use layer::{DEFAULT_MAX_ROUTES, MetricsLayer};
#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
pub use names::{
    CANCELLED, DURATION_BUCKETS, EVENTS_TOTAL, FAILURE, IDEMPOTENT_REPLAY, IGNORED,
    REQUEST_DURATION_SECONDS, REQUESTS_IN_FLIGHT, REQUESTS_TOTAL, SUCCESS, describe,
};
#[cfg(all(feature = "prometheus", feature = "axum"))]
pub use prometheus::prometheus_router;
#[cfg(feature = "prometheus")]
pub use prometheus::{PrometheusService, TEXT_FORMAT, install_prometheus, prometheus_builder};
pub use service::Metrics;
