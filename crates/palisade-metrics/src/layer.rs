//! [`MetricsLayer`]: configuration of the RED metrics middleware.

use std::sync::Arc;

use metrics::SharedString;
use palisade_core::{ConfigError, DefaultClassifier};
use tower_layer::Layer;

use crate::route::{RouteSource, Routes};
use crate::service::Metrics;

/// Default cap on distinct `route` label values per layer.
pub const DEFAULT_MAX_ROUTES: usize = 256;

/// Records RED metrics for every request: [`palisade_requests_total`](crate::REQUESTS_TOTAL)
/// `{route, outcome}`, [`palisade_request_duration_seconds`](crate::REQUEST_DURATION_SECONDS)
/// `{route}` and [`palisade_requests_in_flight`](crate::REQUESTS_IN_FLIGHT) `{route}`.
///
/// `outcome` is `success` or `failure` by the classifier (default
/// [`DefaultClassifier`]), or the [`kind`](palisade_core::Rejection::kind) of a Palisade
/// rejection (`timeout`, `circuit_open`, `bulkhead_full`, `rate_limited`, …) found in the
/// error, or `idempotent_replay` for a response the idempotency layer replayed (header
/// `Idempotent-Replayed`, whatever its status), or `cancelled` when the request was
/// dropped before it finished.
///
/// Place it *outside* the layers that reject (so it sees their typed errors) and inside
/// [`HandleRejectionsLayer`](palisade_core::HandleRejectionsLayer).
///
/// The `route` label is bounded: a fixed name ([`MetricsLayer::with_route`]), or (feature
/// `axum`) the route template from axum's `MatchedPath`, never the raw path. At most
/// `max_routes` distinct values are created; later templates are counted as `other`.
#[derive(Debug, Clone)]
pub struct MetricsLayer<C = DefaultClassifier> {
    source: RouteSource,
    max_routes: usize,
    classifier: C,
    /// Shared by every service this layer (and its clones) builds: axum applies a
    /// router-level layer once per route.
    routes: Arc<Routes>,
}

impl Default for MetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsLayer {
    /// Route label from axum's `MatchedPath` (feature `axum`), `"unmatched"` when absent.
    pub fn new() -> Self {
        let source = RouteSource::Matched {
            fallback: SharedString::const_str("unmatched"),
        };
        Self {
            routes: Arc::new(Routes::new(source.clone(), DEFAULT_MAX_ROUTES)),
            source,
            max_routes: DEFAULT_MAX_ROUTES,
            classifier: DefaultClassifier::new(),
        }
    }

    /// Every request is labelled `route = name` (a service or client name, a route
    /// template).
    pub fn with_route(name: impl Into<SharedString>) -> Self {
        Self {
            source: RouteSource::Fixed(name.into()),
            ..Self::new()
        }
        .rebuilt()
    }
}

impl<C> MetricsLayer<C> {
    fn rebuilt(mut self) -> Self {
        self.routes = Arc::new(Routes::new(self.source.clone(), self.max_routes));
        self
    }

    /// Label used for requests that carry no `MatchedPath` (default `"unmatched"`).
    #[must_use]
    pub fn fallback_route(mut self, name: impl Into<SharedString>) -> Self {
        if let RouteSource::Matched { fallback } = &mut self.source {
            *fallback = name.into();
        }
        self.rebuilt()
    }

    /// Cap on distinct route labels (default 256); must be at least 1.
    pub fn max_routes(mut self, max_routes: usize) -> Result<Self, ConfigError> {
        if max_routes == 0 {
            return Err(ConfigError::new("max_routes", "must be at least 1"));
        }
        self.max_routes = max_routes;
        Ok(self.rebuilt())
    }

    /// Decides `success` / `failure` for responses and non-rejection errors.
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> MetricsLayer<C2> {
        MetricsLayer {
            source: self.source,
            max_routes: self.max_routes,
            classifier,
            routes: self.routes,
        }
    }
}

impl<S, C: Clone> Layer<S> for MetricsLayer<C> {
    type Service = Metrics<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(inner, self.routes.clone(), self.classifier.clone())
    }
}
