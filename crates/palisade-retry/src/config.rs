//! Plain-data configuration of the retry layer, deserializable with the `serde` feature.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};

use crate::backoff::{Backoff, BackoffKind};
use crate::budget::{Budget, KeyedBudget, MAX_HOSTS_RANGE, RetryThrottle, TpsBudget};
use crate::{HedgeLayer, RetryLayer};

/// Which retry budget to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum BudgetKind {
    /// No budget.
    None,
    /// [`TpsBudget`] from `budget_ttl`, `budget_min_per_sec`, `budget_retry_percent`.
    Tps,
    /// [`RetryThrottle`] from `throttle_max_tokens`, `throttle_token_ratio`.
    Throttle,
}

/// Configuration of a [`RetryLayer`], e.g. one route's entry in a config file:
///
/// ```toml
/// max_attempts = 4
/// backoff = "full_jitter"
/// initial_backoff = "100ms"
/// max_backoff = "2s"
/// ```
///
/// Validated once by [`RetryConfig::build`] (or `TryFrom`), never per request.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct RetryConfig {
    /// The layer's instance name, for its events and metrics (`retry="payments"`): 1–128
    /// visible ASCII characters. Default: none (`"retry"`).
    pub name: Option<String>,
    /// Attempts including the first, 1–100. Default 3.
    pub max_attempts: u32,
    /// Backoff kind. Default `full_jitter`.
    pub backoff: BackoffKind,
    /// Initial delay, 0–1 h. Default 100 ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub initial_backoff: Duration,
    /// Cap, ≥ `initial_backoff`, ≤ 1 h. Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub max_backoff: Duration,
    /// Growth factor, 1–100. Default 2.
    pub multiplier: f64,
    /// Replay buffer limit in bytes, ≤ 64 MiB. Default 64 KiB.
    pub body_limit: usize,
    /// Per-attempt timeout, 1 ms–24 h. Default none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub per_attempt_timeout: Option<Duration>,
    /// Retry POST/PATCH without an `Idempotency-Key`. Default `false`.
    pub retry_unsafe_methods: bool,
    /// Budget kind. Default `tps`.
    pub budget: BudgetKind,
    /// TpsBudget window, 1–60 s. Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub budget_ttl: Duration,
    /// TpsBudget reserve per second, ≤ 1 000 000. Default 10.
    pub budget_min_per_sec: u32,
    /// TpsBudget retries per request, 0–1000. Default 0.2.
    pub budget_retry_percent: f32,
    /// Throttle bucket size, 1–1000. Default 10.
    pub throttle_max_tokens: u32,
    /// Throttle credit per success, 0.001–1000. Default 0.1.
    pub throttle_token_ratio: f32,
    /// One budget per upstream host (the request's authority) instead of one shared by
    /// every request. Default `false`.
    pub budget_per_host: bool,
    /// With `budget_per_host`: the most hosts given a budget, 1–1 000 000 (the least
    /// recently used is evicted). Default 1024.
    pub budget_max_hosts: usize,
    /// With `budget_per_host`: a host's budget is dropped after this long unused, 1 s–24 h.
    /// Default 10 min.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub budget_host_idle: Duration,
    /// RNG seed (tests). Default none (random).
    pub seed: Option<u64>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            name: None,
            max_attempts: 3,
            backoff: BackoffKind::FullJitter,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            body_limit: crate::layer::DEFAULT_BODY_LIMIT,
            per_attempt_timeout: None,
            retry_unsafe_methods: false,
            budget: BudgetKind::Tps,
            budget_ttl: Duration::from_secs(10),
            budget_min_per_sec: 10,
            budget_retry_percent: 0.2,
            throttle_max_tokens: 10,
            throttle_token_ratio: 0.1,
            budget_per_host: false,
            budget_max_hosts: 1024,
            budget_host_idle: Duration::from_secs(600),
            seed: None,
        }
    }
}

impl RetryConfig {
    /// Validates every value and builds the layer.
    pub fn build(&self) -> Result<RetryLayer, ConfigError> {
        check_range("max_attempts", self.max_attempts, 1, 100)?;
        let hour = Duration::from_secs(3600);
        check_duration(
            "initial_backoff",
            self.initial_backoff,
            Duration::ZERO,
            hour,
        )?;
        check_duration("max_backoff", self.max_backoff, self.initial_backoff, hour)?;
        if !self.multiplier.is_finite() {
            return Err(ConfigError::new(
                "multiplier",
                "must be between 1.0 and 100.0",
            ));
        }
        check_range("multiplier", self.multiplier, 1.0, 100.0)?;
        check_range("body_limit", self.body_limit, 0, 64 * 1024 * 1024)?;
        if let Some(t) = self.per_attempt_timeout {
            check_duration(
                "per_attempt_timeout",
                t,
                Duration::from_millis(1),
                Duration::from_secs(86_400),
            )?;
        }
        let mut layer = RetryLayer::new()
            .max_attempts(self.max_attempts)
            .backoff(
                Backoff::new(self.backoff, self.initial_backoff, self.max_backoff)
                    .multiplier(self.multiplier),
            )
            .body_limit(self.body_limit)
            .retry_unsafe_methods(self.retry_unsafe_methods);
        if let Some(t) = self.per_attempt_timeout {
            layer = layer.per_attempt_timeout(t);
        }
        if let Some(seed) = self.seed {
            layer = layer.seed(seed);
        }
        if let Some(name) = &self.name {
            palisade_core::config::check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        if self.budget_per_host {
            check_range(
                "budget_max_hosts",
                self.budget_max_hosts,
                MAX_HOSTS_RANGE.0,
                MAX_HOSTS_RANGE.1,
            )?;
            check_duration(
                "budget_host_idle",
                self.budget_host_idle,
                Duration::from_secs(1),
                Duration::from_secs(86_400),
            )?;
        }
        let per_host = |layer: RetryLayer, budget: fn(&Self) -> Arc<dyn Budget>| {
            if !self.budget_per_host {
                return layer.shared_budget(budget(self));
            }
            let cfg = self.clone();
            layer.budget_per_host(KeyedBudget::from_fn(
                self.budget_max_hosts,
                self.budget_host_idle,
                move || budget(&cfg),
            ))
        };
        layer = match self.budget {
            BudgetKind::None => layer.no_budget(),
            BudgetKind::Tps => {
                check_duration(
                    "budget_ttl",
                    self.budget_ttl,
                    Duration::from_secs(1),
                    Duration::from_secs(60),
                )?;
                check_range("budget_min_per_sec", self.budget_min_per_sec, 0, 1_000_000)?;
                if self.budget_retry_percent.is_nan() {
                    return Err(ConfigError::new(
                        "budget_retry_percent",
                        "must be between 0.0 and 1000.0",
                    ));
                }
                check_range(
                    "budget_retry_percent",
                    self.budget_retry_percent,
                    0.0,
                    1000.0,
                )?;
                per_host(layer, |c| {
                    Arc::new(TpsBudget::new(
                        c.budget_ttl,
                        c.budget_min_per_sec,
                        c.budget_retry_percent,
                    ))
                })
            }
            BudgetKind::Throttle => {
                check_range("throttle_max_tokens", self.throttle_max_tokens, 1, 1000)?;
                if self.throttle_token_ratio.is_nan() {
                    return Err(ConfigError::new(
                        "throttle_token_ratio",
                        "must be between 0.001 and 1000.0",
                    ));
                }
                check_range(
                    "throttle_token_ratio",
                    self.throttle_token_ratio,
                    0.001,
                    1000.0,
                )?;
                per_host(layer, |c| {
                    Arc::new(RetryThrottle::new(
                        c.throttle_max_tokens,
                        c.throttle_token_ratio,
                    ))
                })
            }
        };
        Ok(layer)
    }
}

/// Plain-data configuration of a [`HedgeLayer`](crate::HedgeLayer): a fixed `delay`, or
/// (without one) a delay learned from a latency `percentile`.
///
/// ```
/// use palisade_retry::HedgeConfig;
/// let mut cfg = HedgeConfig::default();
/// cfg.percentile = 250.0;
/// assert_eq!(cfg.build().unwrap_err().field(), "percentile");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct HedgeConfig {
    /// Hedge after this fixed delay (`"50ms"`; the learned-delay settings are then unused);
    /// when absent the delay is learned.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub delay: Option<Duration>,
    /// The learned delay's percentile of recent successful latencies, in (0, 100]. Default 95.
    pub percentile: f64,
    /// Successful calls needed before anything is hedged (at least 1). Default 20.
    pub min_data_points: u64,
    /// How long latencies are collected before they are used, 1 ms–1 h. Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub period: Duration,
    /// Extra copies at most, 0–10 (0 disables hedging). Default 1.
    pub max_hedged: u32,
    /// Also hedge requests whose method is not safe (anything but GET, HEAD, OPTIONS,
    /// TRACE, even with an `Idempotency-Key`). Default false. (`retry_unsafe_methods` is
    /// accepted as its former name.)
    #[cfg_attr(feature = "serde", serde(alias = "retry_unsafe_methods"))]
    pub hedge_unsafe_methods: bool,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            delay: None,
            percentile: 95.0,
            min_data_points: 20,
            period: Duration::from_secs(10),
            max_hedged: 1,
            hedge_unsafe_methods: false,
        }
    }
}

impl HedgeConfig {
    /// Validates every value and builds the layer.
    pub fn build(&self) -> Result<HedgeLayer, ConfigError> {
        check_range("max_hedged", self.max_hedged, 0, 10)?;
        let mut builder = HedgeLayer::builder()
            .percentile(self.percentile)
            .min_data_points(self.min_data_points)
            .period(self.period)
            .max_hedged(self.max_hedged)
            .hedge_unsafe_methods(self.hedge_unsafe_methods);
        if let Some(d) = self.delay {
            check_duration("delay", d, Duration::ZERO, Duration::from_secs(3600))?;
            builder = builder.delay(d);
        }
        builder.build()
    }
}

impl TryFrom<&HedgeConfig> for HedgeLayer {
    type Error = ConfigError;
    fn try_from(cfg: &HedgeConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

impl TryFrom<RetryConfig> for RetryLayer {
    type Error = ConfigError;
    fn try_from(cfg: RetryConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

impl TryFrom<&RetryConfig> for RetryLayer {
    type Error = ConfigError;
    fn try_from(cfg: &RetryConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let bad = |f: fn(&mut RetryConfig)| {
            let mut c = RetryConfig::default();
            f(&mut c);
            c.build().unwrap_err().field().to_owned()
        };
        assert_eq!(bad(|c| c.max_attempts = 0), "max_attempts");
        assert_eq!(bad(|c| c.max_attempts = 101), "max_attempts");
        assert_eq!(
            bad(|c| c.max_backoff = Duration::from_millis(50)),
            "max_backoff"
        );
        assert_eq!(bad(|c| c.multiplier = 0.5), "multiplier");
        assert_eq!(bad(|c| c.multiplier = f64::NAN), "multiplier");
        assert_eq!(
            bad(|c| c.budget_ttl = Duration::from_secs(61)),
            "budget_ttl"
        );
        assert_eq!(
            bad(|c| c.budget_retry_percent = -1.0),
            "budget_retry_percent"
        );
        assert_eq!(
            bad(|c| {
                c.budget = BudgetKind::Throttle;
                c.throttle_max_tokens = 0;
            }),
            "throttle_max_tokens"
        );
        assert_eq!(
            bad(|c| c.per_attempt_timeout = Some(Duration::ZERO)),
            "per_attempt_timeout"
        );
        assert_eq!(
            bad(|c| {
                c.budget_per_host = true;
                c.budget_max_hosts = 0;
            }),
            "budget_max_hosts"
        );
        assert_eq!(
            bad(|c| {
                c.budget_per_host = true;
                c.budget_host_idle = Duration::from_millis(10);
            }),
            "budget_host_idle"
        );
        let per_host = RetryConfig {
            budget_per_host: true,
            budget_max_hosts: 64,
            ..RetryConfig::default()
        }
        .build()
        .unwrap();
        assert_eq!(per_host.get_budget_per_host().unwrap().max_hosts(), 64);
        let layer = RetryConfig {
            max_attempts: 5,
            ..RetryConfig::default()
        }
        .build()
        .unwrap();
        assert_eq!(layer.get_max_attempts(), 5);
        assert_eq!(layer.get_backoff().kind(), BackoffKind::FullJitter);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_human_durations() {
        let cfg: RetryConfig = serde_json::from_str(
            r#"{"max_attempts":4,"backoff":"decorrelated_jitter","initial_backoff":"50ms","max_backoff":"2s","budget":"throttle"}"#,
        )
        .unwrap();
        assert_eq!(cfg.max_attempts, 4);
        assert_eq!(cfg.backoff, BackoffKind::DecorrelatedJitter);
        assert_eq!(cfg.initial_backoff, Duration::from_millis(50));
        assert_eq!(cfg.budget, BudgetKind::Throttle);
        assert!(cfg.build().is_ok());
        let hedge: HedgeConfig =
            serde_json::from_str(r#"{"percentile":99.0,"period":"5s","max_hedged":2}"#).unwrap();
        assert_eq!(hedge.period, Duration::from_secs(5));
        hedge.build().unwrap();
        let fixed: HedgeConfig = serde_json::from_str(r#"{"delay":"50ms"}"#).unwrap();
        assert_eq!(
            fixed.build().unwrap().current_delay(),
            Some(Duration::from_millis(50))
        );
        assert!(serde_json::from_str::<HedgeConfig>(r#"{"percentil":9}"#).is_err());
        let err = serde_json::from_str::<RetryConfig>(r#"{"max_atempts":4}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_atempts`"),
            "{err}"
        );
    }
}
