//! RED metrics for Tower services and for every Palisade layer's events, through the
//! [`metrics`] facade (any recorder: Prometheus, OpenTelemetry, StatsD, …).
//!
//! - [`MetricsLayer`]: `palisade_requests_total{route, outcome}`,
//!   `palisade_request_duration_seconds{route}` and `palisade_requests_in_flight{route}`.
//!   `outcome` is `success` / `failure` (the classifier), the rejection kind (`timeout`,
//!   `circuit_open`, `bulkhead_full`, `rate_limited`, …) or `idempotent_replay`. Labels are
//!   bounded: route templates (axum `MatchedPath`, feature `axum`) or a fixed name, never
//!   raw paths.
//! - [`EventMetrics`]: a listener counting every event of every layer as
//!   `palisade_events_total{layer, instance, event}`, and turning the breaker, retry,
//!   bulkhead, rate-limit and canary events into typed metrics labelled by instance name.
//! - [`watch_bulkhead`], [`watch_breaker`], [`watch_canary`] and [`watch_usage`]: live
//!   gauges (bulkhead in flight and queued, breaker state, canary weights, a cache's bytes in
//!   use) sampled from the layers' handles on
//!   a tokio interval.
//!
//! This crate depends on `palisade-core` only: events are read through core's event
//! vocabulary ([`Event`](palisade_core::Event): layer, instance name, kind, typed fields)
//! and handles through its live-gauge traits
//! ([`OccupancyGauge`](palisade_core::event::OccupancyGauge),
//! [`StateGauge`](palisade_core::event::StateGauge),
//! [`WeightGauge`](palisade_core::event::WeightGauge)), so a new pattern needs no change
//! here and the `metrics` feature builds no pattern crate.
//!
//! # Instance names
//!
//! Every layer takes a name in code (`.name("payments")`) or config (`name = "payments"`),
//! carried by its events and handle. The typed metrics label it under the layer's name
//! (`bulkhead="db"`, `breaker="payments"`, `retry="…"`, `ratelimit="…"`, `traffic="…"`),
//! `palisade_events_total` as `instance`; an unnamed layer is labelled with the layer's own
//! name (`bulkhead="bulkhead"`). Two bulkheads therefore export two series, never one sum.
//! - Feature `prometheus`: [`install_prometheus`] and [`PrometheusService`] (`/metrics`).
//! - Feature `otel`: [`OtelRecorder`] and [`install_otel`], exporting through an
//!   OpenTelemetry `Meter` (OTLP or any other OpenTelemetry exporter).
//!
//! # Metric names
//!
//! | name | type | labels | from |
//! |---|---|---|---|
//! | [`palisade_requests_total`](REQUESTS_TOTAL) | counter | `route`, `outcome` | [`MetricsLayer`] |
//! | [`palisade_request_duration_seconds`](REQUEST_DURATION_SECONDS) | histogram | `route` | [`MetricsLayer`] |
//! | [`palisade_requests_in_flight`](REQUESTS_IN_FLIGHT) | gauge | `route` | [`MetricsLayer`] |
//! | [`palisade_events_total`](EVENTS_TOTAL) | counter | `layer`, `instance`, `event` | [`EventMetrics`], every event |
//! | [`palisade_breaker_state`](BREAKER_STATE) | gauge: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open, 5 metrics only | `breaker` | `BreakerEvent::StateChanged`; sampled by [`watch_breaker`] |
//! | [`palisade_breaker_transitions_total`](BREAKER_TRANSITIONS_TOTAL) | counter | `breaker`, `from`, `to` | `BreakerEvent::StateChanged` |
//! | [`palisade_retry_attempts_total`](RETRY_ATTEMPTS_TOTAL) | counter (retries, not first attempts) | `retry`, `reason`: `error`, `status`, `grpc` | `RetryEvent::Attempt` |
//! | [`palisade_retry_budget_exhausted_total`](RETRY_BUDGET_EXHAUSTED_TOTAL) | counter | `retry` | `RetryEvent::BudgetExhausted` |
//! | [`palisade_adaptive_throttle_throttled_total`](ADAPTIVE_THROTTLE_THROTTLED_TOTAL) | counter | `adaptive_throttle` | `ThrottleEvent::Throttled` |
//! | [`palisade_bulkhead_in_flight`](BULKHEAD_IN_FLIGHT) | gauge: calls inside now | `bulkhead` | sampled by [`watch_bulkhead`] |
//! | [`palisade_bulkhead_queued`](BULKHEAD_QUEUED) | gauge: requests waiting now | `bulkhead` | sampled by [`watch_bulkhead`] |
//! | [`palisade_bulkhead_in_flight_at_admission`](BULKHEAD_IN_FLIGHT_AT_ADMISSION) | histogram: calls inside at each admission | `bulkhead` | `BulkheadEvent::Admitted` |
//! | [`palisade_bulkhead_queue_depth_at_enqueue`](BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE) | histogram: queue length at each enqueue | `bulkhead` | `BulkheadEvent::Queued` |
//! | [`palisade_bulkhead_rejections_total`](BULKHEAD_REJECTIONS_TOTAL) | counter | `bulkhead`, `reason`: `full`, `queue_timeout`, `too_many_keys` | `BulkheadEvent::Rejected` |
//! | [`palisade_ratelimit_decisions_total`](RATELIMIT_DECISIONS_TOTAL) | counter | `ratelimit`, `decision`: `allowed`, `limited`, `would_limit` (shadow mode: refused if enforced, but passed) | `RateLimitEvent` |
//! | [`palisade_canary_weight_percent`](CANARY_WEIGHT_PERCENT) | gauge | `traffic`, `arm` | `TrafficEvent::{Advanced, Promoted, RolledBack}` (`Advanced` from the controller's start on); sampled by [`watch_canary`] |
//! | [`palisade_store_bytes`](STORE_BYTES) | gauge: bytes held now | `layer`, `instance` | sampled by [`watch_usage`] (a cache's store) |
//! | [`palisade_store_capacity_bytes`](STORE_CAPACITY_BYTES) | gauge: the byte bound | `layer`, `instance` | sampled by [`watch_usage`] |
//! | [`palisade_canary_rollbacks_total`](CANARY_ROLLBACKS_TOTAL) | counter | `traffic`, `arm`, `reason`: `error_rate`, `latency` | `TrafficEvent::RolledBack` |
//! | [`palisade_messages_total`](MESSAGES_TOTAL) | counter | `processor`, `type` (≤ 64, then `other`), `outcome`: `handled`, `retried`, `dead_lettered` | messaging's `ConsumerEvent` |
//!
//! `outcome` values: [`success`](SUCCESS), [`failure`](FAILURE), [`ignored`](IGNORED),
//! [`cancelled`](CANCELLED), [`idempotent_replay`](IDEMPOTENT_REPLAY), or a rejection's
//! [`kind`](palisade_core::Rejection::kind) (`timeout`, `circuit_open`, `bulkhead_full`,
//! `rate_limited`, `idempotency_conflict`, …). Every label value is a route template, an
//! instance name fixed in code or config (at most 256 per layer and event, then `other`;
//! canary arms are capped at 32), or one of the listed words: never a key, a path or a
//! client address.
//!
//! The bulkhead's events carry its occupancy only when it grows (admission, enqueue): a
//! release emits nothing, to keep the bulkhead's hot path free of work. So the events give
//! the `_at_admission` / `_at_enqueue` histograms, and the live gauges come from
//! [`watch_bulkhead`], which samples `BulkheadHandle::in_flight()` / `queued()`. Likewise
//! `StateChanged` sets the breaker gauge only on transitions; [`watch_breaker`] also sets it
//! before the first one.
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
//!
//! # OpenTelemetry
//!
//! With feature `otel`, [`OtelRecorder`] maps every `metrics` counter, gauge and histogram
//! to an instrument of an `opentelemetry` 0.33 `Meter`; labels become attributes. With the
//! OTLP exporter (crate `opentelemetry-otlp`, not a dependency of this crate):
//!
//! ```ignore
//! let exporter = opentelemetry_otlp::MetricExporter::builder().with_tonic().build()?;
//! let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
//!     .with_periodic_exporter(exporter)
//!     .build();
//! palisade_metrics::install_otel(provider.meter("palisade"))?; // + describe()
//! palisade_metrics::EventMetrics::install_global();
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod config;
mod events;
pub mod future;
mod layer;
mod names;
#[cfg(feature = "otel")]
mod otel;
#[cfg(feature = "prometheus")]
mod prometheus;
mod route;
mod series;
mod service;
mod typed;
mod watch;

pub use config::{MAX_ROUTES_LIMIT, MetricsConfig};
pub use events::EventMetrics;
pub use layer::{DEFAULT_MAX_ROUTES, MetricsLayer};
#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
pub use names::{
    ADAPTIVE_THROTTLE_THROTTLED_TOTAL, BREAKER_STATE, BREAKER_TRANSITIONS_TOTAL,
    BULKHEAD_IN_FLIGHT, BULKHEAD_IN_FLIGHT_AT_ADMISSION, BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE,
    BULKHEAD_QUEUED, BULKHEAD_REJECTIONS_TOTAL, CANARY_ROLLBACKS_TOTAL, CANARY_WEIGHT_PERCENT,
    CANCELLED, COUNT_BUCKETS, DURATION_BUCKETS, EVENTS_TOTAL, FAILURE, IDEMPOTENT_REPLAY, IGNORED,
    MESSAGES_TOTAL, RATELIMIT_DECISIONS_TOTAL, REQUEST_DURATION_SECONDS, REQUESTS_IN_FLIGHT,
    REQUESTS_TOTAL, RETRY_ATTEMPTS_TOTAL, RETRY_BUDGET_EXHAUSTED_TOTAL, STORE_BYTES,
    STORE_CAPACITY_BYTES, SUCCESS, describe,
};
#[cfg(feature = "otel")]
pub use otel::{OtelRecorder, install_otel};
#[cfg(all(feature = "prometheus", feature = "axum"))]
pub use prometheus::prometheus_router;
#[cfg(feature = "prometheus")]
pub use prometheus::{PrometheusService, TEXT_FORMAT, install_prometheus, prometheus_builder};
pub use service::Metrics;
pub use watch::{watch_breaker, watch_bulkhead, watch_canary, watch_usage};
