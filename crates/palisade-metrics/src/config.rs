//! [`MetricsConfig`]: the layer's settings as plain, deserializable data.

use palisade_core::ConfigError;

use crate::layer::{DEFAULT_MAX_ROUTES, MetricsLayer};

/// Largest accepted `max_routes`.
pub const MAX_ROUTES_LIMIT: usize = 10_000;

/// Settings of a [`MetricsLayer`], e.g. from a config file (feature `serde`):
///
/// ```
/// use palisade_metrics::{MetricsConfig, MetricsLayer};
/// let mut config = MetricsConfig::default();
/// config.route = Some("checkout".into());
/// let layer: MetricsLayer = config.build().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct MetricsConfig {
    /// A fixed `route` label for every request; `None` (default) takes axum's
    /// `MatchedPath` (feature `axum`).
    pub route: Option<String>,
    /// Label for requests without a `MatchedPath` (default `"unmatched"`).
    pub fallback_route: String,
    /// Cap on distinct route labels, 1 to 10 000 (default 256).
    pub max_routes: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            route: None,
            fallback_route: "unmatched".to_owned(),
            max_routes: DEFAULT_MAX_ROUTES,
        }
    }
}

impl MetricsConfig {
    /// Validates every field and builds the layer.
    pub fn build(self) -> Result<MetricsLayer, ConfigError> {
        if self.route.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::new("route", "must not be empty when set"));
        }
        if self.fallback_route.is_empty() {
            return Err(ConfigError::new("fallback_route", "must not be empty"));
        }
        if !(1..=MAX_ROUTES_LIMIT).contains(&self.max_routes) {
            return Err(ConfigError::new(
                "max_routes",
                "must be between 1 and 10000",
            ));
        }
        let layer = match self.route {
            Some(route) => MetricsLayer::with_route(route),
            None => MetricsLayer::new().fallback_route(self.fallback_route),
        };
        layer.max_routes(self.max_routes)
    }
}

impl TryFrom<MetricsConfig> for MetricsLayer {
    type Error = ConfigError;
    fn try_from(config: MetricsConfig) -> Result<Self, ConfigError> {
        config.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                MetricsConfig {
                    route: Some(String::new()),
                    ..MetricsConfig::default()
                },
                "route",
            ),
            (
                MetricsConfig {
                    fallback_route: String::new(),
                    ..MetricsConfig::default()
                },
                "fallback_route",
            ),
            (
                MetricsConfig {
                    max_routes: 0,
                    ..MetricsConfig::default()
                },
                "max_routes",
            ),
            (
                MetricsConfig {
                    max_routes: MAX_ROUTES_LIMIT + 1,
                    ..MetricsConfig::default()
                },
                "max_routes",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.build().unwrap_err().field(), field);
        }
        assert!(MetricsConfig::default().build().is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_fields() {
        let c: MetricsConfig = serde_json::from_str(r#"{"route":"api","max_routes":8}"#).unwrap();
        assert_eq!(c.route.as_deref(), Some("api"));
        assert_eq!(c.max_routes, 8);
        assert_eq!(c.fallback_route, "unmatched");
        assert!(serde_json::from_str::<MetricsConfig>(r#"{"rout":"api"}"#).is_err());
    }
}
