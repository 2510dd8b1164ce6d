//! What to register: a [`HealthCheck`] (built in code) and its [`CheckConfig`] (plain data,
//! deserializable), with their defaults and validation.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::check_duration;

use crate::check::Check;

/// Default per-check timeout (Kubernetes' probe `timeoutSeconds` default is 1 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default interval between two runs of a check (Kubernetes' `periodSeconds` default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One check to register: a name, a [`Check`] and how to run it.
///
/// ```
/// use palisade_health::{HealthCheck, check_fn};
/// use std::time::Duration;
/// let check = HealthCheck::new("postgres:responseTime", check_fn(|| async { true }))
///     .critical(true)
///     .timeout(Duration::from_millis(500))
///     .interval(Duration::from_secs(5));
/// # let _ = check;
/// ```
pub struct HealthCheck {
    pub(crate) name: Cow<'static, str>,
    pub(crate) check: Arc<dyn Check>,
    pub(crate) critical: bool,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) component_type: Option<&'static str>,
}

impl fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}

impl HealthCheck {
    /// A non-critical check named `component:measurement` (e.g. `"redis:responseTime"`),
    /// with the default timeout (1 s) and interval (10 s).
    pub fn new(name: impl Into<Cow<'static, str>>, check: impl Check) -> Self {
        Self {
            name: name.into(),
            check: Arc::new(check),
            critical: false,
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
            component_type: None,
        }
    }
    /// Whether a failure of this check fails the whole service (HTTP 503, not ready).
    /// A failing non-critical check only makes the service `warn`.
    #[must_use]
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
    /// How long one run may take before it is abandoned and reported as `fail`
    /// with output `"timed out"`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// How long a result stays fresh; the background runner re-runs the check this often.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
    /// Applies `critical`, `timeout` and `interval` from a [`CheckConfig`] (validated by
    /// [`HealthRegistry::register`](crate::HealthRegistry::register)).
    #[must_use]
    pub fn with_config(mut self, config: &CheckConfig) -> Self {
        self.critical = config.critical;
        self.timeout = config.timeout;
        self.interval = config.interval;
        self
    }
    /// The draft's `componentType`: `"component"`, `"datastore"` or `"system"`.
    #[must_use]
    pub fn component_type(mut self, component_type: &'static str) -> Self {
        self.component_type = Some(component_type);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut parts = self.name.split(':');
        let component = parts.next().unwrap_or_default();
        let measurement = parts.next();
        if component.is_empty() || measurement.is_some_and(str::is_empty) || parts.next().is_some()
        {
            return Err(ConfigError::new(
                "name",
                "must be \"component\" or \"component:measurement\", both parts non-empty and without ':'",
            )
            .within(&self.name));
        }
        let hour = Duration::from_secs(3600);
        check_duration("timeout", self.timeout, Duration::from_millis(1), hour)
            .map_err(|e| e.within(&self.name))?;
        check_duration("interval", self.interval, Duration::from_millis(1), hour)
            .map_err(|e| e.within(&self.name))?;
        if let Some(t) = self.component_type
            && !matches!(t, "component" | "datastore" | "system")
        {
            return Err(ConfigError::new(
                "component_type",
                "must be one of \"component\", \"datastore\", \"system\"",
            )
            .within(&self.name));
        }
        Ok(())
    }
}

/// How a check runs, as plain data (feature `serde`: `Deserialize`, durations like
/// `"500ms"`). Apply it with [`HealthCheck::with_config`].
///
/// ```
/// use palisade_health::{CheckConfig, HealthCheck, HealthRegistry, check_fn};
/// let mut config = CheckConfig::default();
/// config.critical = true;
/// let registry = HealthRegistry::new();
/// registry.register(HealthCheck::new("db", check_fn(|| async { true })).with_config(&config)).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct CheckConfig {
    /// Whether a failure fails the service (default `false`).
    pub critical: bool,
    /// Per-run timeout, 1 ms to 1 h (default 1 s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Duration,
    /// Result lifetime and background period, 1 ms to 1 h (default 10 s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            critical: false,
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
        }
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn check_config_deserializes() {
        let c: CheckConfig =
            serde_json::from_str(r#"{"critical":true,"timeout":"250ms"}"#).unwrap();
        assert!(c.critical);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.interval, DEFAULT_INTERVAL);
        assert!(serde_json::from_str::<CheckConfig>(r#"{"timout":"1s"}"#).is_err());
    }
}
