//! # Palisade
//!
//! Resilience and release patterns as [Tower](https://docs.rs/tower) middleware for axum,
//! hyper and tonic servers and for reqwest/hyper clients: timeout with deadline
//! propagation, retry, circuit breaker, bulkhead, rate limiting, idempotency keys, feature
//! toggles and traffic splitting — each a `Layer` that stacks with `ServiceBuilder`, each
//! `Clone` with one shared state, each answering with correct HTTP and gRPC semantics.
//!
//! This crate is the facade: one cargo feature per pattern re-exports its crate
//! (`palisade::timeout` is `palisade-timeout`), [`prelude`] brings the common names in, and
//! [`ServiceBuilderExt`] adds builder methods.
//!
//! # Example
//!
//! ```
//! use palisade::prelude::*;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let svc = ServiceBuilder::new()
//!     .handle_rejections()                       // rejections → responses; infallible
//!     .timeout_with(Duration::from_millis(250))  // → 504 / DEADLINE_EXCEEDED
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         tokio::time::sleep(Duration::from_secs(1)).await;
//!         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     }));
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.status(), 504);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use tower::ServiceBuilder;
use tower_layer::Stack;

pub use palisade_core::{
    BoxError, ConfigError, Deadline, HandleRejections, HandleRejectionsLayer, body, classify,
    config, deadline, event, grpc, key, rejection, request, response, retry_after,
};

/// Timeout with deadline propagation (`palisade-timeout`).
#[cfg(feature = "timeout")]
pub use palisade_timeout as timeout;

/// Retry: backoff with jitter, server delays, safe methods, body replay, budgets
/// (`palisade-retry`).
#[cfg(feature = "retry")]
pub use palisade_retry as retry;

/// Circuit breaker with Resilience4j's feature set (`palisade-breaker`).
#[cfg(feature = "breaker")]
pub use palisade_breaker as breaker;

/// Bulkhead: concurrency limit with a bounded priority queue (`palisade-bulkhead`).
#[cfg(feature = "bulkhead")]
pub use palisade_bulkhead as bulkhead;

/// Idempotency keys, distributed lock and inbox dedupe (`palisade-idempotency`).
#[cfg(feature = "idempotency")]
pub use palisade_idempotency as idempotency;

/// Feature flags (`palisade-toggle`).
#[cfg(feature = "toggle")]
pub use palisade_toggle as toggle;

/// Traffic splitting and progressive delivery (`palisade-traffic`).
#[cfg(feature = "traffic")]
pub use palisade_traffic as traffic;

/// Fault injection: latency, aborts, errors and bandwidth limits, with Envoy fault headers
/// (`palisade-chaos`).
#[cfg(feature = "chaos")]
pub use palisade_chaos as chaos;

/// Keyed GCRA rate limiting with IETF RateLimit headers, in memory or in Redis
/// (`palisade-ratelimit`).
#[cfg(feature = "ratelimit")]
pub use palisade_ratelimit as ratelimit;

/// The policy plane: per-route stacks from one file, in the canonical order, hot-reloaded
/// with state kept, and explained (`palisade-policy`).
#[cfg(feature = "policy")]
pub use palisade_policy as policy;

/// Health checks: registry, `application/health+json`, liveness/readiness, gRPC health
/// (`palisade-health`).
#[cfg(feature = "health")]
pub use palisade_health as health;

/// RED metrics and event counters (`palisade-metrics`).
#[cfg(feature = "metrics")]
pub use palisade_metrics as metrics;

/// Messaging: producers for NATS JetStream and RabbitMQ, the outbox on PostgreSQL, the event
/// stream processor, write-behind and async jobs (`palisade-messaging`).
#[cfg(feature = "messaging")]
pub use palisade_messaging as messaging;

/// Shared HTTP cache: RFC 9111 freshness, `Vary`, validation, invalidation and
/// `stale-if-error`, stored in memory bounded by bytes (`palisade-cache`).
#[cfg(feature = "cache")]
pub use palisade_cache as cache;

/// Durable workflows: event store, aggregates and projections, CQRS command handlers,
/// sagas, two-phase commit and the anti-corruption layer (`palisade-workflow`).
#[cfg(feature = "workflow")]
pub use palisade_workflow as workflow;

/// The names most stacks need.
pub mod prelude {
    pub use crate::ServiceBuilderExt;
    #[cfg(feature = "breaker")]
    pub use palisade_breaker::{BreakerConfig, CircuitBreakerLayer, SlidingWindow};
    #[cfg(feature = "bulkhead")]
    pub use palisade_bulkhead::{BulkheadConfig, BulkheadLayer};
    pub use palisade_core::{
        BoxError, Classifier, ConfigError, Deadline, DefaultClassifier, HandleRejectionsLayer,
        KeyExtractor, Outcome, Rejection,
    };
    #[cfg(feature = "idempotency")]
    pub use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, MemoryStore};
    #[cfg(feature = "ratelimit")]
    pub use palisade_ratelimit::{Quota, RateLimitConfig, RateLimitLayer};
    #[cfg(feature = "retry")]
    pub use palisade_retry::{AdaptiveThrottleLayer, Backoff, RetryLayer};
    #[cfg(feature = "timeout")]
    pub use palisade_timeout::{TimeoutConfig, TimeoutLayer};
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Palisade's builder methods on [`tower::ServiceBuilder`], in the style of tower-http's
/// `ServiceBuilderExt`. Layers apply outermost first, as with `ServiceBuilder::layer`.
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Answers every error from the layers below with a response (see
    /// [`HandleRejectionsLayer`]). Put it first (outermost).
    fn handle_rejections(self) -> ServiceBuilder<Stack<HandleRejectionsLayer, L>>;

    /// Adds a [`TimeoutLayer`](timeout::TimeoutLayer): pass a `Duration`, a configured layer,
    /// or `TimeoutConfig::build()?`.
    #[cfg(feature = "timeout")]
    fn timeout_with(
        self,
        layer: impl Into<palisade_timeout::TimeoutLayer>,
    ) -> ServiceBuilder<Stack<palisade_timeout::TimeoutLayer, L>>;

    /// Adds a [`RetryLayer`](retry::RetryLayer).
    #[cfg(feature = "retry")]
    fn retry_with(
        self,
        layer: palisade_retry::RetryLayer,
    ) -> ServiceBuilder<Stack<palisade_retry::RetryLayer, L>>;

    /// Adds a [`CircuitBreakerLayer`](breaker::CircuitBreakerLayer) (build it with
    /// `CircuitBreakerLayer::builder()…build()?`; keep `layer.handle()` to read or force it).
    #[cfg(feature = "breaker")]
    fn breaker_with<C>(
        self,
        layer: palisade_breaker::CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<Stack<palisade_breaker::CircuitBreakerLayer<C>, L>>;

    /// Adds a [`BulkheadLayer`](bulkhead::BulkheadLayer).
    #[cfg(feature = "bulkhead")]
    fn bulkhead_with<P, Rel>(
        self,
        layer: palisade_bulkhead::BulkheadLayer<P, Rel>,
    ) -> ServiceBuilder<Stack<palisade_bulkhead::BulkheadLayer<P, Rel>, L>>;

    /// Adds a [`RateLimitLayer`](ratelimit::RateLimitLayer).
    #[cfg(feature = "ratelimit")]
    fn rate_limit_with<X>(
        self,
        layer: palisade_ratelimit::RateLimitLayer<X>,
    ) -> ServiceBuilder<Stack<palisade_ratelimit::RateLimitLayer<X>, L>>;

    /// Adds an [`IdempotencyLayer`](idempotency::IdempotencyLayer) and, inside it, an
    /// [`UnwrapReplayLayer`](body::UnwrapReplayLayer), so that the services below see the
    /// request body type they were written for (axum's `Body` with feature `axum`) rather
    /// than the layer's `RequestBody`. On an axum route this needs the `axum` feature
    /// (`features = ["idempotency", "axum"]`), which implements
    /// [`FromReplayBody`](body::FromReplayBody) for axum's `Body`.
    #[cfg(feature = "idempotency")]
    fn idempotency_with<St, K>(
        self,
        layer: palisade_idempotency::IdempotencyLayer<St, K>,
    ) -> ServiceBuilder<
        Stack<body::UnwrapReplayLayer, Stack<palisade_idempotency::IdempotencyLayer<St, K>, L>>,
    >;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn handle_rejections(self) -> ServiceBuilder<Stack<HandleRejectionsLayer, L>> {
        self.layer(HandleRejectionsLayer::new())
    }

    #[cfg(feature = "timeout")]
    fn timeout_with(
        self,
        layer: impl Into<palisade_timeout::TimeoutLayer>,
    ) -> ServiceBuilder<Stack<palisade_timeout::TimeoutLayer, L>> {
        self.layer(layer.into())
    }

    #[cfg(feature = "retry")]
    fn retry_with(
        self,
        layer: palisade_retry::RetryLayer,
    ) -> ServiceBuilder<Stack<palisade_retry::RetryLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "breaker")]
    fn breaker_with<C>(
        self,
        layer: palisade_breaker::CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<Stack<palisade_breaker::CircuitBreakerLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "bulkhead")]
    fn bulkhead_with<P, Rel>(
        self,
        layer: palisade_bulkhead::BulkheadLayer<P, Rel>,
    ) -> ServiceBuilder<Stack<palisade_bulkhead::BulkheadLayer<P, Rel>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "ratelimit")]
    fn rate_limit_with<X>(
        self,
        layer: palisade_ratelimit::RateLimitLayer<X>,
    ) -> ServiceBuilder<Stack<palisade_ratelimit::RateLimitLayer<X>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "idempotency")]
    fn idempotency_with<St, K>(
        self,
        layer: palisade_idempotency::IdempotencyLayer<St, K>,
    ) -> ServiceBuilder<
        Stack<body::UnwrapReplayLayer, Stack<palisade_idempotency::IdempotencyLayer<St, K>, L>>,
    > {
        self.layer(layer).layer(body::UnwrapReplayLayer::new())
    }
}
