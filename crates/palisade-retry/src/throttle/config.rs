//! [`AdaptiveThrottleConfig`]: plain-data configuration, deserializable with the `serde`
//! feature, validated once by [`AdaptiveThrottleConfig::build`].

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};

use super::layer::AdaptiveThrottleLayer;

/// Bounds of `k`.
pub const K_RANGE: (f64, f64) = (1.0, 10.0);
/// Bounds of the window.
pub const WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// Bounds of the bucket count.
pub const BUCKETS_RANGE: (u32, u32) = (1, 120);

/// Configuration of an [`AdaptiveThrottleLayer`], e.g. one upstream's entry in a config
/// file:
///
/// ```toml
/// k = 2.0
/// window = "2m"
/// buckets = 20
/// ```
///
/// ```
/// use palisade_retry::throttle::AdaptiveThrottleConfig;
/// let mut cfg = AdaptiveThrottleConfig::default();
/// cfg.k = 0.5;
/// let err = cfg.build().unwrap_err();
/// assert_eq!(err.field(), "k");
/// assert_eq!(err.to_string(), "invalid configuration `k`: must be between 1.0 and 10.0 (got 0.5)");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct AdaptiveThrottleConfig {
    /// The instance name, for events and metrics: 1–128 visible ASCII characters. Default:
    /// none (`"adaptive_throttle"`).
    pub name: Option<String>,
    /// Multiplier of accepts, 1.0–10.0: the client sends up to about `k` × what the
    /// upstream accepts. Default 2.0.
    pub k: f64,
    /// How far back requests and accepts count, 1 s–1 h. Default 2 min.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub window: Duration,
    /// Buckets the window slides by, 1–120, each at least 10 ms. Default 20.
    pub buckets: u32,
    /// Cap on the rejection probability, 0.0–1.0. Default 1.0 (no cap).
    pub max_probability: f64,
    /// Seed of the rejection draws (tests). Default none (random).
    pub seed: Option<u64>,
}

impl Default for AdaptiveThrottleConfig {
    fn default() -> Self {
        Self {
            name: None,
            k: 2.0,
            window: Duration::from_secs(120),
            buckets: 20,
            max_probability: 1.0,
            seed: None,
        }
    }
}

fn check_f64(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if value.is_nan() {
        return Err(ConfigError::new(
            field,
            format!("must be between {min:?} and {max:?} (got NaN)"),
        ));
    }
    check_range(field, value, min, max)
}

impl AdaptiveThrottleConfig {
    /// Validates every value and builds the layer.
    pub fn build(&self) -> Result<AdaptiveThrottleLayer, ConfigError> {
        check_f64("k", self.k, K_RANGE.0, K_RANGE.1)?;
        check_duration("window", self.window, WINDOW_RANGE.0, WINDOW_RANGE.1)?;
        check_range("buckets", self.buckets, BUCKETS_RANGE.0, BUCKETS_RANGE.1)?;
        if self.window / self.buckets < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "buckets",
                format!(
                    "must leave each bucket at least 10ms of the {:?} window (got {})",
                    self.window, self.buckets
                ),
            ));
        }
        check_f64("max_probability", self.max_probability, 0.0, 1.0)?;
        let mut layer = AdaptiveThrottleLayer::new()
            .k(self.k)
            .max_probability(self.max_probability)
            .window(self.window)
            .buckets(self.buckets);
        if let Some(seed) = self.seed {
            layer = layer.seed(seed);
        }
        if let Some(name) = &self.name {
            palisade_core::config::check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        Ok(layer)
    }
}

impl TryFrom<&AdaptiveThrottleConfig> for AdaptiveThrottleLayer {
    type Error = ConfigError;
    fn try_from(cfg: &AdaptiveThrottleConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

impl TryFrom<AdaptiveThrottleConfig> for AdaptiveThrottleLayer {
    type Error = ConfigError;
    fn try_from(cfg: AdaptiveThrottleConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // a value passed through unchanged is exact
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let bad = |f: fn(&mut AdaptiveThrottleConfig)| {
            let mut c = AdaptiveThrottleConfig::default();
            f(&mut c);
            c.build().unwrap_err().field().to_owned()
        };
        assert_eq!(bad(|c| c.k = 0.99), "k");
        assert_eq!(bad(|c| c.k = 10.5), "k");
        assert_eq!(bad(|c| c.k = f64::NAN), "k");
        assert_eq!(bad(|c| c.window = Duration::from_millis(999)), "window");
        assert_eq!(bad(|c| c.window = Duration::from_secs(3601)), "window");
        assert_eq!(bad(|c| c.buckets = 0), "buckets");
        assert_eq!(bad(|c| c.buckets = 121), "buckets");
        assert_eq!(
            bad(|c| {
                c.window = Duration::from_secs(1);
                c.buckets = 101;
            }),
            "buckets"
        );
        assert_eq!(bad(|c| c.max_probability = 1.01), "max_probability");
        assert_eq!(bad(|c| c.max_probability = f64::NAN), "max_probability");
        assert_eq!(bad(|c| c.name = Some(String::new())), "name");
        let layer = AdaptiveThrottleConfig {
            k: 1.5,
            window: Duration::from_secs(30),
            ..AdaptiveThrottleConfig::default()
        }
        .build()
        .unwrap();
        assert_eq!(layer.get_k(), 1.5);
        assert_eq!(layer.get_window(), Duration::from_secs(30));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_human_durations() {
        let cfg: AdaptiveThrottleConfig =
            serde_json::from_str(r#"{"k":1.1,"window":"30s","buckets":10,"seed":3}"#).unwrap();
        assert_eq!(cfg.window, Duration::from_secs(30));
        assert_eq!(cfg.seed, Some(3));
        cfg.build().unwrap();
        let err = serde_json::from_str::<AdaptiveThrottleConfig>(r#"{"K":2}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `K`"), "{err}");
    }
}
