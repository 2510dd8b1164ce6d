//! Retry budgets, shared by every clone of the service, so retries cannot multiply an
//! outage: a Finagle/tower TPS budget and gRPC's retryThrottling token bucket.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};
use tower::retry::budget::{Budget as _, TpsBudget};

/// Decides whether another retry may be sent.
pub trait RetryBudget: Send + Sync + 'static {
    /// An original request (not a retry) was sent.
    fn on_request(&self) {}
    /// An attempt succeeded.
    fn on_success(&self) {}
    /// An attempt failed with a retryable outcome.
    fn on_failure(&self) {}
    /// May a retry be sent now? (May spend budget.)
    fn try_retry(&self) -> bool;
}

/// Finagle-style budget (`../shared/SPECS.md` §4.3): each request deposits `ratio`, each
/// retry withdraws 1, plus a reserve of `min_per_sec` retries per second; deposits expire
/// after `ttl`. Backed by tower's `TpsBudget` (tokio time, so it follows paused time).
pub struct Tps {
    inner: TpsBudget,
    desc: (Duration, u32, f32),
}

impl fmt::Debug for Tps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tps")
            .field("ttl", &self.desc.0)
            .field("min_per_sec", &self.desc.1)
            .field("ratio", &self.desc.2)
            .finish_non_exhaustive()
    }
}

impl Tps {
    /// `ttl` 1–60 s, `min_per_sec` 0–100,000, `ratio` 0–1,000 (0.2 = one retry per five
    /// requests). Finagle's default is `(10 s, 10, 0.2)`.
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f32) -> Result<Self, ConfigError> {
        check_duration(
            "budget.ttl",
            ttl,
            Duration::from_secs(1),
            Duration::from_secs(60),
        )?;
        check_range("budget.min_per_sec", min_per_sec, 0, 100_000)?;
        check_range("budget.ratio", ratio, 0.0, 1000.0)?;
        Ok(Self {
            inner: TpsBudget::new(ttl, min_per_sec, ratio),
            desc: (ttl, min_per_sec, ratio),
        })
    }
}

impl RetryBudget for Tps {
    fn on_request(&self) {
        self.inner.deposit();
    }
    fn try_retry(&self) -> bool {
        self.inner.withdraw()
    }
}

/// gRPC retryThrottling (gRFC A6, SPECS §3.8): tokens start at `max_tokens`; a failure
/// costs 1, a success adds `token_ratio`; retries are allowed only while tokens exceed
/// `max_tokens / 2`.
#[derive(Debug)]
pub struct GrpcThrottle {
    /// Thousandths of a token.
    milli: AtomicU64,
    max: u64,
    ratio: u64,
}

impl GrpcThrottle {
    /// `max_tokens` in (0, 1000], `token_ratio` > 0 (truncated to 3 decimals).
    pub fn new(max_tokens: u32, token_ratio: f32) -> Result<Self, ConfigError> {
        check_range("budget.max_tokens", max_tokens, 1, 1000)?;
        if !(token_ratio > 0.0 && token_ratio <= 1000.0) {
            return Err(ConfigError::new(
                "budget.token_ratio",
                format!("must be in (0, 1000] (got {token_ratio})"),
            ));
        }
        let max = u64::from(max_tokens) * 1000;
        Ok(Self {
            milli: AtomicU64::new(max),
            max,
            ratio: (f64::from(token_ratio) * 1000.0) as u64,
        })
    }
    /// Current tokens (for tests and metrics).
    pub fn tokens(&self) -> f64 {
        self.milli.load(Ordering::Acquire) as f64 / 1000.0
    }
}

impl RetryBudget for GrpcThrottle {
    fn on_success(&self) {
        let _ = self
            .milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some((t + self.ratio).min(self.max))
            });
    }
    fn on_failure(&self) {
        let _ = self
            .milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(1000))
            });
    }
    fn try_retry(&self) -> bool {
        self.milli.load(Ordering::Acquire) > self.max / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tps_vectors() {
        // SPECS §4: TpsBudget(1 s, 5, 1.0): 5 withdrawals succeed with no deposits, 6th fails.
        let b = Tps::new(Duration::from_secs(1), 5, 1.0).unwrap();
        for _ in 0..5 {
            assert!(b.try_retry());
        }
        assert!(!b.try_retry());
        // TpsBudget(1 s, 0, 1.0): deposit, advance 3 s, withdraw → false (expired).
        let b = Tps::new(Duration::from_secs(1), 0, 1.0).unwrap();
        assert!(!b.try_retry());
        b.on_request();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!b.try_retry());
        // TpsBudget(10 s, 10, 0.2): 100 from the reserve; after 100 deposits 20 more; then no.
        let b = Tps::new(Duration::from_secs(10), 10, 0.2).unwrap();
        for _ in 0..100 {
            assert!(b.try_retry());
        }
        assert!(!b.try_retry());
        for _ in 0..100 {
            b.on_request();
        }
        for _ in 0..20 {
            assert!(b.try_retry());
        }
        assert!(!b.try_retry());
    }

    #[test]
    fn grpc_throttle_vector() {
        // SPECS §3: maxTokens 10, ratio 0.1: 5 failures → 5 (retries off); 1 OK → 5.1 (on).
        let t = GrpcThrottle::new(10, 0.1).unwrap();
        assert!((t.tokens() - 10.0).abs() < 1e-9);
        for _ in 0..5 {
            t.on_failure();
        }
        assert!((t.tokens() - 5.0).abs() < 1e-9);
        assert!(!t.try_retry());
        t.on_success();
        assert!((t.tokens() - 5.1).abs() < 1e-9);
        assert!(t.try_retry());
        for _ in 0..100 {
            t.on_failure();
        }
        assert!(t.tokens().abs() < 1e-9, "never below 0");
    }

    #[test]
    fn validation() {
        assert_eq!(
            Tps::new(Duration::ZERO, 1, 0.2).unwrap_err().field(),
            "budget.ttl"
        );
        assert_eq!(
            GrpcThrottle::new(0, 0.1).unwrap_err().field(),
            "budget.max_tokens"
        );
        assert_eq!(
            GrpcThrottle::new(10, 0.0).unwrap_err().field(),
            "budget.token_ratio"
        );
    }
}
