//! Plain-data configuration, validated once into a layer.

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::{MAX_INSTANCE_NAME, check_duration, check_instance_name, check_range};

use crate::machine::Settings;
use crate::window::SlidingWindow;

/// Breaker settings, as in a config file (Resilience4j's names and defaults):
///
/// ```toml
/// name = "payments"
/// window = { count = 100 }      # or { time = 60 } (seconds)
/// minimum_calls = 100
/// failure_rate_threshold = 50.0
/// slow_call_rate_threshold = 100.0
/// slow_call_duration = "60s"
/// wait_in_open = "60s"
/// wait_multiplier = 1.0         # > 1 grows the wait with each consecutive opening
/// max_wait_in_open = "60s"
/// permitted_in_half_open = 10
/// max_wait_in_half_open = "0s"  # 0 = wait for the probes indefinitely
/// automatic_transition = false  # true: a timer moves OPEN → HALF_OPEN without a call
///
/// [fleet]                       # optional: share the window and state through Redis
/// name = "payments"             # default: the breaker's name
/// key_prefix = "palisade:cb:"
/// flush_interval = "100ms"      # 10 ms – 10 s
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct BreakerConfig {
    /// The breaker's instance name, for its events and metrics (`breaker="payments"`):
    /// 1–128 visible ASCII characters. Default: none (`"breaker"`).
    pub name: Option<String>,
    /// Count-based (last N calls, 1–10,000) or time-based (last N seconds, 1–3,600).
    pub window: SlidingWindow,
    /// Calls needed before rates count (1–window size for count windows). Default 100.
    pub minimum_calls: u32,
    /// Failure rate in percent, in (0, 100], at or above which the breaker opens. Default 50.
    pub failure_rate_threshold: f32,
    /// Slow-call rate in percent, in (0, 100], at or above which it opens. Default 100.
    pub slow_call_rate_threshold: f32,
    /// A call slower than this is slow. Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub slow_call_duration: Duration,
    /// How long OPEN lasts before probes are let through. Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub wait_in_open: Duration,
    /// Growth of the wait per consecutive opening, 1.0 (fixed) to 10.0. Default 1.0.
    pub wait_multiplier: f64,
    /// Cap of the growing wait. Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub max_wait_in_open: Duration,
    /// Probe calls in HALF_OPEN, 1–1,000. Default 10.
    pub permitted_in_half_open: u32,
    /// Reopen if the probes have not decided within this time; zero waits forever. Default 0.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub max_wait_in_half_open: Duration,
    /// Move OPEN → HALF_OPEN (and a stalled HALF_OPEN → OPEN) from a timer task on the
    /// current Tokio runtime instead of on the next call. Default false (lazy).
    pub automatic_transition: bool,
    /// Share the window and the OPEN/HALF_OPEN state with every instance of the same
    /// [`FleetConfig::name`] through Redis (feature `redis`; the connection is given in code,
    /// with `CircuitBreakerBuilder::redis`). Needs a
    /// time window. Default: none (this instance's own window).
    pub fleet: Option<FleetConfig>,
}

/// The `fleet` section of a [`BreakerConfig`]: one breaker shared by every instance through
/// Redis (see the crate docs, "Sharing state across a fleet"). The Redis URL is not part of
/// it: the application passes its `redis::aio::ConnectionManager` to
/// `CircuitBreakerBuilder::redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct FleetConfig {
    /// The shared breaker's name, the `{<name>}` of its Redis keys: every instance with the
    /// same prefix and name shares one breaker. 1–128 visible ASCII characters. Default:
    /// the breaker's name.
    pub name: Option<String>,
    /// Prefix of the Redis keys, up to 128 visible ASCII characters. Default `palisade:cb:`.
    pub key_prefix: String,
    /// How often each instance sends its counts and reads the fleet's (one round trip),
    /// 10 ms – 10 s, at most the window. Default 100 ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub flush_interval: Duration,
}

/// Default [`FleetConfig::key_prefix`].
pub const DEFAULT_FLEET_PREFIX: &str = "palisade:cb:";
/// Default [`FleetConfig::flush_interval`].
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            name: None,
            key_prefix: DEFAULT_FLEET_PREFIX.to_owned(),
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }
}

impl FleetConfig {
    /// Checks the section against the breaker's `window`.
    pub(crate) fn validate(&self, window: SlidingWindow) -> Result<(), ConfigError> {
        if let Some(name) = &self.name {
            check_instance_name("fleet.name", name)?;
        }
        if self.key_prefix.len() > MAX_INSTANCE_NAME
            || !self.key_prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::new(
                "fleet.key_prefix",
                format!(
                    "must be at most {MAX_INSTANCE_NAME} visible ASCII characters (got {:?})",
                    self.key_prefix
                ),
            ));
        }
        check_duration(
            "fleet.flush_interval",
            self.flush_interval,
            Duration::from_millis(10),
            Duration::from_secs(10),
        )?;
        match window {
            SlidingWindow::Time(secs) => {
                if self.flush_interval > Duration::from_secs(u64::from(secs)) {
                    return Err(ConfigError::new(
                        "fleet.flush_interval",
                        format!(
                            "must be at most the window ({secs} s; got {:?})",
                            self.flush_interval
                        ),
                    ));
                }
                Ok(())
            }
            SlidingWindow::Count(_) => Err(ConfigError::new(
                "window",
                "a fleet breaker needs a time window ({ time = N }): calls on different \
                 instances have no shared order, so there is no fleet-wide \"last N calls\"",
            )),
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            name: None,
            window: SlidingWindow::Count(100),
            minimum_calls: 100,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(60),
            wait_in_open: Duration::from_secs(60),
            wait_multiplier: 1.0,
            max_wait_in_open: Duration::from_secs(60),
            permitted_in_half_open: 10,
            max_wait_in_half_open: Duration::ZERO,
            automatic_transition: false,
            fleet: None,
        }
    }
}

const DAY: Duration = Duration::from_secs(86_400);

impl BreakerConfig {
    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        match self.window {
            SlidingWindow::Count(n) => check_range("window.count", n, 1, 10_000)?,
            SlidingWindow::Time(n) => check_range("window.time", n, 1, 3_600)?,
        }
        if let SlidingWindow::Count(n) = self.window {
            check_range("minimum_calls", self.minimum_calls, 1, n).map_err(|e| {
                ConfigError::new(
                    "minimum_calls",
                    format!(
                        "{} (it cannot exceed the count window, or the breaker could never open)",
                        e.problem()
                    ),
                )
            })?;
        } else {
            check_range("minimum_calls", self.minimum_calls, 1, 1_000_000)?;
        }
        check_percent("failure_rate_threshold", self.failure_rate_threshold)?;
        check_percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        check_duration(
            "slow_call_duration",
            self.slow_call_duration,
            Duration::from_millis(1),
            DAY,
        )?;
        check_duration(
            "wait_in_open",
            self.wait_in_open,
            Duration::from_millis(1),
            DAY,
        )?;
        // `check_range` lets NaN through (every comparison with it is false).
        if self.wait_multiplier.is_nan() {
            return Err(ConfigError::new(
                "wait_multiplier",
                "must be between 1.0 and 10.0 (got NaN)",
            ));
        }
        check_range("wait_multiplier", self.wait_multiplier, 1.0, 10.0)?;
        check_duration(
            "max_wait_in_open",
            self.max_wait_in_open,
            self.wait_in_open,
            DAY,
        )
        .map_err(|e| {
            ConfigError::new(
                "max_wait_in_open",
                format!("{} (it must be at least wait_in_open)", e.problem()),
            )
        })?;
        check_range(
            "permitted_in_half_open",
            self.permitted_in_half_open,
            1,
            1_000,
        )?;
        check_duration(
            "max_wait_in_half_open",
            self.max_wait_in_half_open,
            Duration::ZERO,
            DAY,
        )?;
        if let Some(fleet) = &self.fleet {
            fleet.validate(self.window)?;
        }
        Ok(Settings {
            window: self.window,
            minimum_calls: self.minimum_calls,
            failure_rate: self.failure_rate_threshold,
            slow_rate: self.slow_call_rate_threshold,
            slow_call: self.slow_call_duration,
            wait_in_open: self.wait_in_open,
            wait_multiplier: self.wait_multiplier,
            max_wait_in_open: self.max_wait_in_open,
            permitted_in_half_open: self.permitted_in_half_open,
            max_wait_in_half_open: (!self.max_wait_in_half_open.is_zero())
                .then_some(self.max_wait_in_half_open),
            automatic: self.automatic_transition,
        })
    }
}

fn check_percent(field: &'static str, v: f32) -> Result<(), ConfigError> {
    if v.is_nan() || v <= 0.0 || v > 100.0 {
        return Err(ConfigError::new(
            field,
            format!("must be a percentage in (0, 100] (got {v})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_fields() {
        BreakerConfig::default().validate().unwrap();
        let bad = BreakerConfig {
            minimum_calls: 200,
            ..BreakerConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "minimum_calls");
        let bad = BreakerConfig {
            failure_rate_threshold: 0.0,
            ..BreakerConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "invalid configuration `failure_rate_threshold`: must be a percentage in (0, 100] (got 0)"
        );
        let bad = BreakerConfig {
            window: SlidingWindow::Time(0),
            ..BreakerConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "window.time");
        let bad = BreakerConfig {
            max_wait_in_open: Duration::from_secs(1),
            ..BreakerConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "max_wait_in_open");
        for m in [f64::NAN, 0.5, 10.5, f64::INFINITY] {
            let bad = BreakerConfig {
                wait_multiplier: m,
                ..BreakerConfig::default()
            };
            assert_eq!(
                bad.validate().unwrap_err().field(),
                "wait_multiplier",
                "{m}"
            );
        }
    }

    #[test]
    fn fleet_section_is_checked_with_field_paths() {
        let with = |f: FleetConfig, window: SlidingWindow| BreakerConfig {
            window,
            minimum_calls: 10,
            fleet: Some(f),
            ..BreakerConfig::default()
        };
        let time = SlidingWindow::Time(5);
        with(FleetConfig::default(), time).validate().unwrap();
        let field = |f: FleetConfig, w| with(f, w).validate().unwrap_err().field().to_owned();
        assert_eq!(
            field(FleetConfig::default(), SlidingWindow::Count(100)),
            "window"
        );
        let f = FleetConfig {
            name: Some(String::new()),
            ..FleetConfig::default()
        };
        assert_eq!(field(f, time), "fleet.name");
        let f = FleetConfig {
            key_prefix: "has space".into(),
            ..FleetConfig::default()
        };
        assert_eq!(field(f, time), "fleet.key_prefix");
        for every in [Duration::from_millis(9), Duration::from_secs(11)] {
            let f = FleetConfig {
                flush_interval: every,
                ..FleetConfig::default()
            };
            assert_eq!(field(f, SlidingWindow::Time(60)), "fleet.flush_interval");
        }
        let f = FleetConfig {
            flush_interval: Duration::from_secs(2),
            ..FleetConfig::default()
        };
        assert_eq!(
            with(f, SlidingWindow::Time(1))
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid configuration `fleet.flush_interval`: must be at most the window (1 s; got 2s)"
        );
        // An empty prefix is allowed (the keys start with the hash tag).
        let f = FleetConfig {
            key_prefix: String::new(),
            ..FleetConfig::default()
        };
        with(f, time).validate().unwrap();
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_a_fleet_section() {
        let c: BreakerConfig = serde_json::from_str(
            r#"{"window":{"time":30},"minimum_calls":5,"fleet":{"name":"pay","flush_interval":"50ms"}}"#,
        )
        .unwrap();
        let f = c.fleet.clone().unwrap();
        assert_eq!(f.name.as_deref(), Some("pay"));
        assert_eq!(f.key_prefix, DEFAULT_FLEET_PREFIX);
        assert_eq!(f.flush_interval, Duration::from_millis(50));
        c.validate().unwrap();
        let err = serde_json::from_str::<BreakerConfig>(r#"{"fleet":{"url":"redis://x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `url`"), "{err}");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes() {
        let c: BreakerConfig = serde_json::from_str(
            r#"{"window":{"time":30},"minimum_calls":5,"wait_in_open":"5s","max_wait_in_open":"1m","wait_multiplier":2.0}"#,
        )
        .unwrap();
        assert_eq!(c.window, SlidingWindow::Time(30));
        assert_eq!(c.wait_in_open, Duration::from_secs(5));
        c.validate().unwrap();
    }
}
