//! Ready-made checks: circuit breaker state, bulkhead saturation, Redis ping.
//!
//! They take closures, not the breaker or bulkhead types, so any implementation can be
//! wired in: `breaker_check(move || match handle.state() { .. })`.

use palisade_core::ConfigError;

use crate::check::{Check, CheckOutcome, check_sync};

/// The state of a circuit breaker, as a health check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Probing: a few calls are let through.
    HalfOpen,
    /// Calls are refused.
    Open,
}

/// A check on a circuit breaker's state: closed → pass, half-open → warn, open → fail
/// with output `"circuit open"`.
///
/// Registered non-critical (the default), an open breaker makes the service `warn`
/// (degraded, still ready); registered critical, it makes the service `fail`.
///
/// ```
/// use palisade_health::{CircuitState, HealthCheck, breaker_check};
/// # let state = || CircuitState::Open;
/// let check = HealthCheck::new("payments-breaker:state", breaker_check(state));
/// # let _ = check;
/// ```
pub fn breaker_check<F>(state: F) -> impl Check
where
    F: Fn() -> CircuitState + Send + Sync + 'static,
{
    check_sync(move || match state() {
        CircuitState::Closed => CheckOutcome::pass(),
        CircuitState::HalfOpen => CheckOutcome::warn("circuit half-open"),
        CircuitState::Open => CheckOutcome::fail("circuit open"),
    })
}

/// A check on a bulkhead's (or pool's) saturation. `usage` returns `(in_use, capacity)`;
/// the utilization in percent is the `observedValue` (unit `percent`). At or above
/// `warn_at` (a fraction, e.g. `0.8`) the check warns, at or above `fail_at` it fails.
///
/// Fails with a [`ConfigError`] unless `0 < warn_at <= fail_at <= 1`.
///
/// ```
/// use palisade_health::{HealthCheck, HealthRegistry, Status, saturation_check};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = HealthRegistry::new();
/// let check = saturation_check(|| (9, 10), 0.8, 1.0).unwrap();
/// registry.register(HealthCheck::new("bulkhead:utilization", check)).unwrap();
/// let report = registry.report().await;
/// assert_eq!(report.checks[0].outcome.status, Status::Warn);
/// assert_eq!(report.checks[0].outcome.observed.as_ref().unwrap().0, 90.0);
/// # }
/// ```
pub fn saturation_check<F>(usage: F, warn_at: f64, fail_at: f64) -> Result<impl Check, ConfigError>
where
    F: Fn() -> (usize, usize) + Send + Sync + 'static,
{
    if !(warn_at > 0.0 && warn_at <= 1.0) {
        return Err(ConfigError::new("warn_at", "must be in (0, 1]"));
    }
    if !(fail_at >= warn_at && fail_at <= 1.0) {
        return Err(ConfigError::new("fail_at", "must be in [warn_at, 1]"));
    }
    Ok(check_sync(move || {
        let (in_use, capacity) = usage();
        let ratio = if capacity == 0 {
            1.0
        } else {
            in_use as f64 / capacity as f64
        };
        let outcome = if ratio >= fail_at {
            CheckOutcome::fail(format!("{in_use} of {capacity} in use"))
        } else if ratio >= warn_at {
            CheckOutcome::warn(format!("{in_use} of {capacity} in use"))
        } else {
            CheckOutcome::pass()
        };
        outcome.with_observed((ratio * 1000.0).round() / 10.0, "percent")
    }))
}

#[cfg(feature = "redis")]
pub use self::redis_check::{REDIS_UNAVAILABLE, redis_check};

#[cfg(feature = "redis")]
mod redis_check {
    use std::sync::Arc;

    use redis::aio::ConnectionManager;
    use tokio::sync::OnceCell;

    use crate::check::{Check, CheckFuture, CheckOutcome};

    struct RedisPing {
        client: redis::Client,
        conn: Arc<OnceCell<ConnectionManager>>,
    }

    impl Check for RedisPing {
        fn check(&self) -> CheckFuture {
            let client = self.client.clone();
            let conn = self.conn.clone();
            Box::pin(async move {
                let manager = match conn
                    .get_or_try_init(|| {
                        // One quick retry: the next check tries again anyway, and a check
                        // stuck in reconnect backoff would only report its own timeout.
                        let config =
                            redis::aio::ConnectionManagerConfig::new().set_number_of_retries(1);
                        ConnectionManager::new_with_config(client, config)
                    })
                    .await
                {
                    Ok(m) => m,
                    Err(e) => return unavailable(&format_args!("connect: {e}")),
                };
                let mut manager = manager.clone();
                match redis::cmd("PING").query_async::<String>(&mut manager).await {
                    Ok(pong) if pong == "PONG" => CheckOutcome::pass(),
                    Ok(other) => unavailable(&format_args!("unexpected reply {other:?}")),
                    Err(e) => unavailable(&e),
                }
            })
        }
    }

    /// The fixed `output` of a failing Redis check.
    pub const REDIS_UNAVAILABLE: &str = "redis unavailable";

    /// A failed outcome with the fixed [`REDIS_UNAVAILABLE`] output; the error itself (which
    /// may name hosts, ports or users of the Redis URL) goes to `tracing` only.
    fn unavailable(error: &dyn std::fmt::Display) -> CheckOutcome {
        tracing::warn!(target: "palisade::health", error = %error, "redis health check failed");
        CheckOutcome::fail(REDIS_UNAVAILABLE)
    }

    /// A check sending `PING` to Redis over one reused connection (a
    /// `ConnectionManager`, which reconnects by itself). Register it as
    /// `redis:responseTime`; the check's duration is the `observedValue` in ms.
    ///
    /// A failure reports the fixed output [`REDIS_UNAVAILABLE`] (`/health` may be public):
    /// the error text, which can name the Redis host or user, is logged with `tracing`
    /// (target `palisade::health`, WARN) and never put in the report.
    pub fn redis_check(client: redis::Client) -> impl Check {
        RedisPing {
            client,
            conn: Arc::new(OnceCell::new()),
        }
    }
}
