//! Progressive canary delivery with automatic rollback (Flagger / Argo Rollouts style).

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::check_duration;

/// Bounds of [`CanaryConfig::interval`]: 1 s to 24 h (`tokio::time::interval` panics on
/// zero; a day between analyses is already a very slow rollout).
pub const INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(86_400));
/// Largest [`CanaryConfig::min_samples`].
pub const MAX_MIN_SAMPLES: u64 = 100_000_000;
/// Largest [`CanaryConfig::max_p99`] (the latency histogram's last finite bucket is ~36 min).
pub const MAX_P99: Duration = Duration::from_secs(3600);

use crate::events::{RollbackReason, TrafficEvent};
use crate::handle::SplitHandle;
use crate::stats::ArmSnapshot;

/// Canary analysis settings. Start from [`Default`] (5 → 25 → 50 → 100 % every 60 s,
/// rollback when the canary's error rate exceeds stable's by 5 points over at least 50 calls).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct CanaryConfig {
    /// Canary traffic percentages, strictly increasing, each in 1..=100, ending at 100
    /// (so at most 100 steps).
    pub steps: Vec<u32>,
    /// Time between analyses, 1 s to 24 h (only used by [`CanaryController::run`]).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
    /// Roll back when `canary_error_rate > stable_error_rate + this` (0.0..=1.0).
    pub max_error_rate_increase: f64,
    /// Calls the canary must have served in the window before any decision, 1 to
    /// [`MAX_MIN_SAMPLES`].
    pub min_samples: u64,
    /// Roll back when the canary's p99 latency exceeds this (1 µs to 1 h).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_p99: Option<Duration>,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            steps: vec![5, 25, 50, 100],
            interval: Duration::from_secs(60),
            max_error_rate_increase: 0.05,
            min_samples: 50,
            max_p99: None,
        }
    }
}

impl CanaryConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.steps.is_empty()
            || self.steps.windows(2).any(|w| w[0] >= w[1])
            || self.steps.iter().any(|&s| s == 0 || s > 100)
            || self.steps.last() != Some(&100)
        {
            return Err(ConfigError::new(
                "steps",
                "must be strictly increasing percentages in 1..=100 ending at 100",
            ));
        }
        check_duration(
            "interval",
            self.interval,
            INTERVAL_RANGE.0,
            INTERVAL_RANGE.1,
        )?;
        if !(0.0..=1.0).contains(&self.max_error_rate_increase) {
            return Err(ConfigError::new(
                "max_error_rate_increase",
                "must be in 0.0..=1.0",
            ));
        }
        if !(1..=MAX_MIN_SAMPLES).contains(&self.min_samples) {
            return Err(ConfigError::new(
                "min_samples",
                format!(
                    "must be between 1 and {MAX_MIN_SAMPLES} (got {})",
                    self.min_samples
                ),
            ));
        }
        if let Some(p99) = self.max_p99 {
            check_duration("max_p99", p99, Duration::from_micros(1), MAX_P99)?;
        }
        Ok(())
    }
}

/// Where a canary rollout stands.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum CanaryState {
    /// Serving this percent of traffic, under analysis.
    Progressing {
        /// Canary share in percent.
        percent: u32,
    },
    /// Reached 100 %.
    Promoted,
    /// Set back to 0 %.
    RolledBack(RollbackReason),
}

/// What one [`CanaryController::tick`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Tick {
    /// Not enough canary samples yet; the window keeps accumulating.
    Held {
        /// Unchanged canary share.
        percent: u32,
    },
    /// Healthy: advanced to the next step.
    Advanced {
        /// New canary share.
        percent: u32,
    },
    /// Healthy at the last step: the canary now has 100 %.
    Promoted,
    /// Unhealthy: the canary was set to 0 %.
    RolledBack(RollbackReason),
    /// The rollout had already finished; nothing changed.
    Finished,
}

/// Drives a canary through [`CanaryConfig::steps`], rolling back on bad health.
///
/// Call [`tick`](Self::tick) once per interval (tests do it by hand under paused time), or
/// spawn [`run`](Self::run). Weights are set on the stable and canary arms only; other arms
/// of the split keep their weights (give them 0 for a pure two-arm canary).
#[derive(Debug)]
pub struct CanaryController {
    handle: SplitHandle,
    stable: usize,
    canary: usize,
    config: CanaryConfig,
    step: usize,
    baseline: (ArmSnapshot, ArmSnapshot),
    state: CanaryState,
}

impl CanaryController {
    /// Validates `config` and starts the rollout: the canary gets the first step's share now,
    /// announced by [`TrafficEvent::Advanced`] (after the weights' `WeightChanged`), so
    /// listeners see the canary's share from the start.
    pub fn start(
        handle: SplitHandle,
        stable: &str,
        canary: &str,
        config: CanaryConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let s = handle.control.index_or_err("stable", stable)?;
        let c = handle.control.index_or_err("canary", canary)?;
        if s == c {
            return Err(ConfigError::new(
                "canary",
                "must differ from the stable arm",
            ));
        }
        let mut this = Self {
            baseline: (ArmSnapshot::default(), ArmSnapshot::default()),
            handle,
            stable: s,
            canary: c,
            state: CanaryState::Progressing {
                percent: config.steps[0],
            },
            config,
            step: 0,
        };
        let percent = this.config.steps[0];
        this.set_percent(percent)?;
        this.reset_baseline();
        this.handle.emit(|instance| TrafficEvent::Advanced {
            instance,
            arm: this.arm_name(),
            percent,
        });
        Ok(this)
    }

    /// Current state.
    pub fn state(&self) -> CanaryState {
        self.state
    }

    fn set_percent(&self, percent: u32) -> Result<(), ConfigError> {
        let mut weights = self.handle.weights();
        weights[self.stable] = 100 - percent;
        weights[self.canary] = percent;
        self.handle.set_weights(&weights)
    }

    fn reset_baseline(&mut self) {
        let stats = &self.handle.control.stats;
        self.baseline = (stats[self.stable].snapshot(), stats[self.canary].snapshot());
    }

    fn arm_name(&self) -> Arc<str> {
        Arc::clone(&self.handle.control.names[self.canary])
    }

    /// Analyses the window since the last decision and advances, holds or rolls back.
    pub fn tick(&mut self) -> Tick {
        let CanaryState::Progressing { percent } = self.state else {
            return Tick::Finished;
        };
        let stats = &self.handle.control.stats;
        let stable = stats[self.stable].snapshot().since(&self.baseline.0);
        let canary = stats[self.canary].snapshot().since(&self.baseline.1);
        if canary.total() < self.config.min_samples {
            return Tick::Held { percent };
        }
        let (ce, se) = (canary.error_rate(), stable.error_rate());
        let reason = if ce > se + self.config.max_error_rate_increase {
            Some(RollbackReason::ErrorRate {
                canary: ce,
                stable: se,
            })
        } else {
            self.config
                .max_p99
                .zip(canary.quantile(0.99))
                .filter(|(bound, p99)| p99 > bound)
                .map(|(bound, p99)| RollbackReason::Latency { p99, bound })
        };
        self.reset_baseline();
        if let Some(reason) = reason {
            // Weights stay valid: stable gets 100.
            let _ = self.set_percent(0);
            self.state = CanaryState::RolledBack(reason);
            self.handle.emit(|instance| TrafficEvent::RolledBack {
                instance,
                arm: self.arm_name(),
                reason,
            });
            tracing::warn!(target: "palisade", canary = %self.arm_name(), ?reason, "canary rolled back");
            return Tick::RolledBack(reason);
        }
        // A single step (`[100]`) starts at 100 %: a healthy analysis promotes it.
        self.step = (self.step + 1).min(self.config.steps.len() - 1);
        let percent = self.config.steps[self.step];
        let _ = self.set_percent(percent);
        if percent == 100 {
            self.state = CanaryState::Promoted;
            self.handle.emit(|instance| TrafficEvent::Promoted {
                instance,
                arm: self.arm_name(),
            });
            Tick::Promoted
        } else {
            self.state = CanaryState::Progressing { percent };
            self.handle.emit(|instance| TrafficEvent::Advanced {
                instance,
                arm: self.arm_name(),
                percent,
            });
            Tick::Advanced { percent }
        }
    }

    /// Ticks every [`CanaryConfig::interval`] until promoted or rolled back; spawn it on tokio.
    pub async fn run(mut self) -> CanaryState {
        let period = self.config.interval;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if matches!(
                self.tick(),
                Tick::Promoted | Tick::RolledBack(_) | Tick::Finished
            ) {
                return self.state;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(CanaryConfig::default().validate().is_ok());
        let bad = CanaryConfig {
            steps: vec![5, 5, 100],
            ..CanaryConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "steps");
        let bad = CanaryConfig {
            steps: vec![5, 50],
            ..CanaryConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "steps");
        let bad = CanaryConfig {
            max_error_rate_increase: 1.5,
            ..CanaryConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field(),
            "max_error_rate_increase"
        );
        let bad = CanaryConfig {
            min_samples: 0,
            ..CanaryConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "min_samples");
        for interval in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_secs(86_401),
        ] {
            let bad = CanaryConfig {
                interval,
                ..CanaryConfig::default()
            };
            assert_eq!(
                bad.validate().unwrap_err().field(),
                "interval",
                "{interval:?}"
            );
        }
        let bad = CanaryConfig {
            min_samples: MAX_MIN_SAMPLES + 1,
            ..CanaryConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "min_samples");
        let bad = CanaryConfig {
            max_p99: Some(Duration::from_secs(7200)),
            ..CanaryConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "max_p99");
        let ok = CanaryConfig {
            interval: Duration::from_secs(86_400),
            max_p99: Some(Duration::from_secs(3600)),
            ..CanaryConfig::default()
        };
        assert!(ok.validate().is_ok());
    }
}
