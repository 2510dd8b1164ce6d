//! Per-route metric handles, registered once and cached.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use arc_swap::ArcSwap;
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, SharedString};

use crate::names::{
    FAILURE, REQUEST_DURATION_SECONDS, REQUESTS_IN_FLIGHT, REQUESTS_TOTAL, SUCCESS,
};

static METADATA: Metadata<'static> = Metadata::new("palisade", Level::INFO, Some(module_path!()));

/// The metric handles of one route. Handles are bound to the recorder that was current
/// when the route saw its first request.
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    route: SharedString,
    pub(crate) in_flight: Gauge,
    pub(crate) duration: Histogram,
    success: Counter,
    failure: Counter,
    others: RwLock<Vec<(&'static str, Counter)>>,
}

impl RouteMetrics {
    pub(crate) fn new(route: SharedString) -> Self {
        let label = || vec![Label::new("route", route.clone())];
        let (in_flight, duration) = metrics::with_recorder(|r| {
            (
                r.register_gauge(&Key::from_parts(REQUESTS_IN_FLIGHT, label()), &METADATA),
                r.register_histogram(
                    &Key::from_parts(REQUEST_DURATION_SECONDS, label()),
                    &METADATA,
                ),
            )
        });
        Self {
            success: register_outcome(&route, SUCCESS),
            failure: register_outcome(&route, FAILURE),
            route,
            in_flight,
            duration,
            others: RwLock::new(Vec::new()),
        }
    }

    /// Counts one finished request with `outcome`.
    pub(crate) fn count(&self, outcome: &'static str) {
        if outcome == SUCCESS {
            return self.success.increment(1);
        }
        if outcome == FAILURE {
            return self.failure.increment(1);
        }
        {
            let others = self
                .others
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, c)) = others.iter().find(|(k, _)| *k == outcome) {
                return c.increment(1);
            }
        }
        let counter = register_outcome(&self.route, outcome);
        counter.increment(1);
        let mut others = self
            .others
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !others.iter().any(|(k, _)| *k == outcome) {
            others.push((outcome, counter));
        }
    }
}

fn register_outcome(route: &SharedString, outcome: &'static str) -> Counter {
    let key = Key::from_parts(
        REQUESTS_TOTAL,
        vec![
            Label::new("route", route.clone()),
            Label::from_static_parts("outcome", outcome),
        ],
    );
    metrics::with_recorder(|r| r.register_counter(&key, &METADATA))
}

/// Where the `route` label comes from.
#[derive(Debug, Clone)]
pub(crate) enum RouteSource {
    /// Always this name.
    Fixed(SharedString),
    /// axum's `MatchedPath` when present, else the fallback name.
    Matched { fallback: SharedString },
}

/// The route cache shared by all clones of one service.
#[derive(Debug)]
pub(crate) struct Routes {
    source: RouteSource,
    cap: usize,
    /// The fixed route, or the fallback for requests without a matched path.
    default: OnceLock<Arc<RouteMetrics>>,
    /// Matched routes: read lock-free, copied on insert (routes are few and fixed).
    matched: ArcSwap<HashMap<Box<str>, Arc<RouteMetrics>>>,
    /// Distinct route labels created so far (guards inserts).
    insert: std::sync::Mutex<usize>,
}

/// Label used once `max_routes` distinct routes have been seen.
pub(crate) const OVERFLOW_ROUTE: &str = "other";

impl Routes {
    pub(crate) fn new(source: RouteSource, max_routes: usize) -> Self {
        Self {
            source,
            cap: max_routes,
            default: OnceLock::new(),
            matched: ArcSwap::from_pointee(HashMap::new()),
            insert: std::sync::Mutex::new(0),
        }
    }

    fn default_route(&self) -> &Arc<RouteMetrics> {
        self.default.get_or_init(|| {
            let name = match &self.source {
                RouteSource::Fixed(name) => name.clone(),
                RouteSource::Matched { fallback } => fallback.clone(),
            };
            Arc::new(RouteMetrics::new(name))
        })
    }

    /// The metrics for a request whose matched route template is `matched`.
    pub(crate) fn get(&self, matched: Option<&str>) -> Arc<RouteMetrics> {
        let (RouteSource::Matched { .. }, Some(path)) = (&self.source, matched) else {
            return self.default_route().clone();
        };
        if let Some(m) = self.matched.load().get(path) {
            return m.clone();
        }
        self.insert_slow(path)
    }

    #[cold]
    fn insert_slow(&self, path: &str) -> Arc<RouteMetrics> {
        let mut distinct = self
            .insert
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.matched.load_full();
        if let Some(m) = current.get(path) {
            return m.clone();
        }
        let metrics = if *distinct < self.cap {
            *distinct += 1;
            Arc::new(RouteMetrics::new(SharedString::from(path.to_owned())))
        } else {
            match current.values().find(|m| &*m.route == OVERFLOW_ROUTE) {
                Some(m) => m.clone(),
                None => Arc::new(RouteMetrics::new(SharedString::const_str(OVERFLOW_ROUTE))),
            }
        };
        // Overflowing templates are remembered too (mapped to "other"), up to a hard cap.
        if current.len() < self.cap.saturating_mul(4) {
            let mut next = HashMap::clone(&current);
            next.insert(path.into(), metrics.clone());
            self.matched.store(Arc::new(next));
        }
        metrics
    }
}
