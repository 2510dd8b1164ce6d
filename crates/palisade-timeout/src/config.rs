//! Plain-data configuration of the timeout layer, deserializable with the `serde` feature.

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::check_duration;

use crate::TimeoutLayer;

/// Shortest accepted timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Longest accepted timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Configuration of a [`TimeoutLayer`], e.g. one route's entry in a config file:
///
/// ```toml
/// timeout = "2s"
/// deadline_header = "x-request-timeout-ms"
/// ```
///
/// Validated once by [`TimeoutConfig::build`] (or `TryFrom`), never per request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// The layer's instance name, for its events and metrics: 1–128 visible ASCII
    /// characters. Default: none (`"timeout"`).
    pub name: Option<String>,
    /// The timeout, 1 ms to 24 h (`"250ms"`, `"2s"`). Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub timeout: Duration,
    /// Honour a shorter incoming `grpc-timeout`. Default `true`.
    pub honour_grpc_timeout: bool,
    /// A header carrying the caller's budget in milliseconds. Default none.
    pub deadline_header: Option<String>,
    /// Put the [`Deadline`](palisade_core::Deadline) in request extensions. Default `true`.
    pub insert_deadline: bool,
    /// Write outgoing `grpc-timeout` (client side). Default `false`.
    pub outbound: bool,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            name: None,
            timeout: Duration::from_secs(30),
            honour_grpc_timeout: true,
            deadline_header: None,
            insert_deadline: true,
            outbound: false,
        }
    }
}

impl TimeoutConfig {
    /// A configuration with this timeout and the other defaults.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }

    /// Validates every value and builds the layer.
    pub fn build(&self) -> Result<TimeoutLayer, ConfigError> {
        check_duration("timeout", self.timeout, MIN_TIMEOUT, MAX_TIMEOUT)?;
        let mut layer = TimeoutLayer::new(self.timeout)
            .honour_grpc_timeout(self.honour_grpc_timeout)
            .insert_deadline(self.insert_deadline)
            .outbound(self.outbound);
        if let Some(name) = &self.name {
            palisade_core::config::check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        if let Some(name) = &self.deadline_header {
            let name = palisade_core::config::header_name("deadline_header", name)?;
            layer = layer.deadline_header(name);
        }
        Ok(layer)
    }
}

impl TryFrom<TimeoutConfig> for TimeoutLayer {
    type Error = ConfigError;
    fn try_from(cfg: TimeoutConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

impl TryFrom<&TimeoutConfig> for TimeoutLayer {
    type Error = ConfigError;
    fn try_from(cfg: &TimeoutConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let e = TimeoutConfig::new(Duration::ZERO).build().unwrap_err();
        assert_eq!(e.field(), "timeout");
        assert_eq!(e.problem(), "must be between 1ms and 86400s (got 0ns)");
        let e = TimeoutConfig::new(Duration::from_secs(86_401))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "timeout");
        let cfg = TimeoutConfig {
            deadline_header: Some("bad header".into()),
            ..TimeoutConfig::default()
        };
        assert_eq!(cfg.build().unwrap_err().field(), "deadline_header");
        assert_eq!(
            TimeoutConfig::new(Duration::from_millis(250))
                .build()
                .unwrap()
                .timeout(),
            Duration::from_millis(250)
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_human_durations() {
        let cfg: TimeoutConfig =
            serde_json::from_str(r#"{"timeout":"250ms","deadline_header":"x-budget-ms"}"#).unwrap();
        assert_eq!(cfg.timeout, Duration::from_millis(250));
        assert_eq!(cfg.deadline_header.as_deref(), Some("x-budget-ms"));
        assert!(cfg.honour_grpc_timeout);
        let err = serde_json::from_str::<TimeoutConfig>(r#"{"timeout":"2 parsecs"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value: string \"2 parsecs\", expected a duration at line 1 column 22"
        );
        let err = serde_json::from_str::<TimeoutConfig>(r#"{"timout":"2s"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `timout`"), "{err}");
    }
}
