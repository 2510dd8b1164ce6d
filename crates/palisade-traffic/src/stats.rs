//! Per-arm outcome counters and a fixed-bucket latency histogram (atomics only, no
//! allocation per request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram buckets: bucket `i` holds latencies below `2^i` microseconds (the last one is
/// open-ended), so percentiles are exact to within a factor of two, reported as the bucket's
/// upper bound (a conservative estimate for a `p99 <= bound` check).
pub(crate) const LATENCY_BUCKETS: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct ArmStats {
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) latency: [AtomicU64; LATENCY_BUCKETS],
}

#[inline]
fn latency_bucket(d: Duration) -> usize {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    ((64 - micros.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
}

impl ArmStats {
    #[inline]
    pub(crate) fn record(&self, failure: bool, latency: Duration) {
        if failure {
            self.failures.fetch_add(1, Ordering::Relaxed);
        } else {
            self.successes.fetch_add(1, Ordering::Relaxed);
        }
        self.latency[latency_bucket(latency)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ArmSnapshot {
        ArmSnapshot {
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            latency: std::array::from_fn(|i| self.latency[i].load(Ordering::Relaxed)),
        }
    }
}

/// Cumulative counters of one arm at one moment; subtract two to get a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmSnapshot {
    /// Calls classified as success.
    pub successes: u64,
    /// Calls classified as failure (ignored outcomes are not counted).
    pub failures: u64,
    latency: [u64; LATENCY_BUCKETS],
}

impl Default for ArmSnapshot {
    fn default() -> Self {
        Self {
            successes: 0,
            failures: 0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

impl ArmSnapshot {
    /// The counts between `earlier` and `self`.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            successes: self.successes.saturating_sub(earlier.successes),
            failures: self.failures.saturating_sub(earlier.failures),
            latency: std::array::from_fn(|i| self.latency[i].saturating_sub(earlier.latency[i])),
        }
    }

    /// Successes plus failures.
    pub fn total(&self) -> u64 {
        self.successes + self.failures
    }

    /// Failures / total, 0.0 when there is no sample.
    pub fn error_rate(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            0.0
        } else {
            self.failures as f64 / total as f64
        }
    }

    /// Latency at quantile `q` (0.0..=1.0), as the upper bound of its histogram bucket
    /// (exact within a factor of two); `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n: u64 = self.latency.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.latency.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_micros(1u64 << i));
            }
        }
        Some(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_and_rates() {
        let s = ArmStats::default();
        for _ in 0..99 {
            s.record(false, Duration::from_millis(3));
        }
        s.record(true, Duration::from_millis(700));
        let snap = s.snapshot();
        assert_eq!(snap.total(), 100);
        assert!((snap.error_rate() - 0.01).abs() < 1e-12);
        let p50 = snap.quantile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_millis(3) && p50 < Duration::from_millis(6),
            "{p50:?}"
        );
        let p99 = snap.quantile(0.99).unwrap();
        assert!(p99 < Duration::from_millis(6));
        let max = snap.quantile(1.0).unwrap();
        assert!(
            max >= Duration::from_millis(700) && max < Duration::from_millis(1400),
            "{max:?}"
        );
        let later = s.snapshot().since(&snap);
        assert_eq!(later.total(), 0);
        assert_eq!(later.quantile(0.99), None);
    }
}
