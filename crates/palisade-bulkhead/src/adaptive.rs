//! Adaptive concurrency limits: how the bulkhead's limit follows observed latency.
//!
//! [`Aimd`] and [`Gradient`] are the settings a user picks; [`Adaptive`] is the chosen
//! algorithm with its running state, kept in the admission queue's lock and stepped once per
//! finished call by [`Admission`](crate::admission::Admission).

use std::time::Duration;

/// Adaptive concurrency limit, AIMD (additive increase, multiplicative decrease), as in
/// Netflix concurrency-limits' `AIMDLimit`: a call that held its slot longer than
/// `latency_threshold` multiplies the limit by `backoff` (at least `min`); a faster call adds
/// one when at least half the limit is in use (at most `max`), so an idle service does not
/// grow its limit. The latency measured is the slot's holding time (for [`OnBodyEnd`](crate::OnBodyEnd),
/// until the body ends).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Aimd {
    /// Lowest limit.
    pub min: usize,
    /// Highest limit.
    pub max: usize,
    /// Calls slower than this count as overload.
    pub latency_threshold: Duration,
    /// Factor applied on overload, in (0, 1).
    pub backoff: f64,
}

impl Aimd {
    /// Limit between `min` and `max`, overload above `latency_threshold`, backoff 0.9.
    pub fn new(min: usize, max: usize, latency_threshold: Duration) -> Self {
        Self {
            min,
            max,
            latency_threshold,
            backoff: 0.9,
        }
    }
    /// Sets the multiplicative decrease factor (default 0.9), in (0, 1).
    #[must_use]
    pub fn backoff(mut self, backoff: f64) -> Self {
        self.backoff = backoff;
        self
    }

    /// The next limit after one call finished in `latency` with `in_flight` calls inside
    /// (counting it).
    pub(crate) fn next(&self, limit: usize, in_flight: usize, latency: Duration) -> usize {
        if latency > self.latency_threshold {
            ((limit as f64 * self.backoff) as usize).clamp(self.min, self.max)
        } else if in_flight * 2 >= limit {
            (limit + 1).clamp(self.min, self.max)
        } else {
            limit.clamp(self.min, self.max)
        }
    }
}

/// Gradient adaptive limit, after Netflix concurrency-limits' `Gradient2Limit` (and Envoy's
/// adaptive concurrency): compares each call's latency with a long-term average; while calls
/// are no slower than `tolerance` × the average the limit grows by about √limit, when they
/// get slower it shrinks by up to half, smoothed by `smoothing`. Reacts to latency *changes*,
/// so no absolute threshold is needed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Gradient {
    /// Lowest limit.
    pub min: usize,
    /// Highest limit.
    pub max: usize,
    /// Samples in the long-term latency average (exponential, default 100).
    pub long_window: usize,
    /// Latency may reach `tolerance` × the long-term average before the limit shrinks
    /// (default 1.5, at least 1).
    pub tolerance: f64,
    /// Weight of each new estimate, in (0, 1] (default 0.2).
    pub smoothing: f64,
}

impl Gradient {
    /// Limit between `min` and `max`, window 100, tolerance 1.5, smoothing 0.2.
    pub fn new(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            long_window: 100,
            tolerance: 1.5,
            smoothing: 0.2,
        }
    }
    /// Samples in the long-term average.
    #[must_use]
    pub fn long_window(mut self, n: usize) -> Self {
        self.long_window = n;
        self
    }
    /// Latency tolerance factor (at least 1).
    #[must_use]
    pub fn tolerance(mut self, t: f64) -> Self {
        self.tolerance = t;
        self
    }
    /// Smoothing, in (0, 1].
    #[must_use]
    pub fn smoothing(mut self, s: f64) -> Self {
        self.smoothing = s;
        self
    }
}

/// The adaptive algorithm and its state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Adaptive {
    Aimd(Aimd),
    Gradient {
        cfg: Gradient,
        /// Long-term latency average, seconds (0 before the first sample).
        long: f64,
        /// The limit before rounding.
        estimate: f64,
    },
}

impl Adaptive {
    pub(crate) fn gradient(cfg: Gradient) -> Self {
        Self::Gradient {
            cfg,
            long: 0.0,
            estimate: 0.0,
        }
    }
    pub(crate) fn bounds(&self) -> (usize, usize) {
        match self {
            Self::Aimd(a) => (a.min, a.max),
            Self::Gradient { cfg, .. } => (cfg.min, cfg.max),
        }
    }
    pub(crate) fn next(&mut self, limit: usize, in_flight: usize, latency: Duration) -> usize {
        match self {
            Self::Aimd(a) => a.next(limit, in_flight, latency),
            Self::Gradient {
                cfg,
                long,
                estimate,
            } => {
                let rtt = latency.as_secs_f64().max(1e-9);
                if *estimate == 0.0 {
                    *estimate = limit as f64;
                }
                if *long == 0.0 {
                    *long = rtt;
                } else {
                    let a = 2.0 / (cfg.long_window as f64 + 1.0);
                    *long = *long * (1.0 - a) + rtt * a;
                }
                // After a drop in latency, let the average follow quickly. (`>` against `>=`
                // differs only at a ratio of exactly 2.0: excluded in `.cargo/mutants.toml`.)
                if *long / rtt > 2.0 {
                    *long *= 0.95;
                }
                // Application-limited: too little traffic to learn from.
                if (in_flight as f64) < *estimate / 2.0 {
                    return limit.clamp(cfg.min, cfg.max);
                }
                let gradient = (cfg.tolerance * *long / rtt).clamp(0.5, 1.0);
                let new = *estimate * gradient + estimate.sqrt();
                *estimate = (*estimate * (1.0 - cfg.smoothing) + new * cfg.smoothing)
                    .clamp(cfg.min as f64, cfg.max as f64);
                (*estimate as usize).clamp(cfg.min, cfg.max)
            }
        }
    }
}

#[cfg(test)]
mod tests;
