//! Plain-data configuration.

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};

/// Where a request waits when no slot is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum BulkheadMode {
    /// `poll_ready` is always ready; `call` takes a slot, queues (up to `max_queue`, for at
    /// most `max_queue_wait`) or rejects at once. For servers (axum treats services as
    /// always ready).
    #[default]
    Shed,
    /// `poll_ready` waits for a slot (the Tower way), so callers feel backpressure; a full
    /// queue makes `poll_ready` fail. For clients and pipelines. The slot is reserved in
    /// `poll_ready` and spent by the next `call`; clones never copy it. `poll_ready` does not
    /// see the request, so waiting happens in lane 0 (priorities apply in shed mode).
    Backpressure,
}

/// Bulkhead settings:
///
/// ```toml
/// name = "db"
/// max_concurrent = 64
/// max_queue = 128
/// max_queue_wait = "250ms"
/// mode = "shed"   # or "backpressure"
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct BulkheadConfig {
    /// The bulkhead's instance name, for its events and metrics (`bulkhead="db"`): 1–128
    /// visible ASCII characters. Default: none (`"bulkhead"`).
    pub name: Option<String>,
    /// Most calls inside at once, 1–1,000,000. Default 64.
    pub max_concurrent: usize,
    /// Most requests waiting, 0–1,000,000. Default 0.
    pub max_queue: usize,
    /// Longest wait in the queue, 1 ms–1 h. Default 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub max_queue_wait: Duration,
    /// Shed (default) or backpressure.
    pub mode: BulkheadMode,
    /// Adaptive (AIMD) limit; `max_concurrent` is then the starting limit. Default: off.
    pub adaptive: Option<AdaptiveConfig>,
}

/// Adaptive (AIMD) limit settings, see [`Aimd`](crate::Aimd):
///
/// ```toml
/// [adaptive]
/// min = 4
/// max = 256
/// latency_threshold = "200ms"
/// backoff = 0.9
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct AdaptiveConfig {
    /// Lowest limit, at least 1. Default 1.
    pub min: usize,
    /// Highest limit, at least `min`. Default 1,000.
    pub max: usize,
    /// Calls holding their slot longer than this count as overload. Default 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub latency_threshold: Duration,
    /// Multiplicative decrease, in (0, 1). Default 0.9.
    pub backoff: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            min: 1,
            max: 1_000,
            latency_threshold: Duration::from_secs(1),
            backoff: 0.9,
        }
    }
}

impl From<&AdaptiveConfig> for crate::Aimd {
    fn from(c: &AdaptiveConfig) -> Self {
        crate::Aimd::new(c.min, c.max, c.latency_threshold).backoff(c.backoff)
    }
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            name: None,
            max_concurrent: 64,
            max_queue: 0,
            max_queue_wait: Duration::from_secs(1),
            mode: BulkheadMode::Shed,
            adaptive: None,
        }
    }
}

impl BulkheadConfig {
    /// Validates and builds the layer (slot held until the response body ends).
    ///
    /// ```
    /// use palisade_bulkhead::{BulkheadConfig, BulkheadLayer};
    /// let mut config = BulkheadConfig::default();
    /// config.max_concurrent = 8;
    /// let layer: BulkheadLayer = config.build()?;
    /// let same = BulkheadLayer::try_from(&config)?;
    /// # let _ = (layer, same);
    /// config.max_concurrent = 0;
    /// assert_eq!(config.build().unwrap_err().field(), "max_concurrent");
    /// # Ok::<(), palisade_core::ConfigError>(())
    /// ```
    pub fn build(&self) -> Result<crate::BulkheadLayer, ConfigError> {
        crate::BulkheadLayer::builder().config(self.clone()).build()
    }
}

impl TryFrom<&BulkheadConfig> for crate::BulkheadLayer {
    type Error = ConfigError;
    fn try_from(config: &BulkheadConfig) -> Result<Self, ConfigError> {
        config.build()
    }
}

impl TryFrom<BulkheadConfig> for crate::BulkheadLayer {
    type Error = ConfigError;
    fn try_from(config: BulkheadConfig) -> Result<Self, ConfigError> {
        crate::BulkheadLayer::builder().config(config).build()
    }
}

impl BulkheadConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_range("max_concurrent", self.max_concurrent, 1, 1_000_000)?;
        check_range("max_queue", self.max_queue, 0, 1_000_000)?;
        check_duration(
            "max_queue_wait",
            self.max_queue_wait,
            Duration::from_millis(1),
            Duration::from_secs(3_600),
        )
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        BulkheadConfig::default().validate().unwrap();
        let mut c = BulkheadConfig::default();
        c.max_concurrent = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid configuration `max_concurrent`: must be between 1 and 1000000 (got 0)"
        );
        let mut c = BulkheadConfig::default();
        c.max_queue_wait = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().field(), "max_queue_wait");
    }

    #[test]
    fn reserves_are_checked_at_build() {
        let e = crate::BulkheadLayer::builder()
            .max_concurrent(4)
            .priority(crate::NoPriority, vec![4, 0])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "reserved[0]");
        let e = crate::BulkheadLayer::builder()
            .max_concurrent(4)
            .priority(crate::NoPriority, vec![1, 2])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "reserved[1]");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes() {
        let c: BulkheadConfig = serde_json::from_str(
            r#"{"max_concurrent":8,"max_queue":16,"max_queue_wait":"250ms","mode":"backpressure"}"#,
        )
        .unwrap();
        assert_eq!(c.max_queue_wait, Duration::from_millis(250));
        assert_eq!(c.mode, BulkheadMode::Backpressure);
        let c: BulkheadConfig = serde_json::from_str(
            r#"{"max_concurrent":8,"adaptive":{"min":2,"max":16,"latency_threshold":"50ms"}}"#,
        )
        .unwrap();
        let layer = crate::BulkheadLayer::try_from(c).unwrap();
        assert_eq!(layer.handle().limit(), 8);
        let e = serde_json::from_str::<BulkheadConfig>(r#"{"max_concurent":8}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn build_checks_the_adaptive_section() {
        let mut c = BulkheadConfig::default();
        c.adaptive = Some(AdaptiveConfig {
            min: 0,
            ..AdaptiveConfig::default()
        });
        assert_eq!(c.build().unwrap_err().field(), "adaptive.min");
        let mut c = BulkheadConfig::default();
        c.adaptive = Some(AdaptiveConfig::default());
        assert_eq!(c.build().unwrap().handle().limit(), 64);
    }
}
