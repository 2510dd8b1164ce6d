//! The ready-made checks: breaker state, saturation, Redis ping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use palisade_health::{
    CircuitState, HealthCheck, HealthRegistry, Status, breaker_check, saturation_check,
};

fn state_of(v: &AtomicU8) -> CircuitState {
    match v.load(Ordering::SeqCst) {
        0 => CircuitState::Closed,
        1 => CircuitState::HalfOpen,
        _ => CircuitState::Open,
    }
}

#[tokio::test(start_paused = true)]
async fn breaker_state_maps_to_status_and_criticality() {
    let state = Arc::new(AtomicU8::new(0));
    let (a, b) = (state.clone(), state.clone());
    let registry = HealthRegistry::new();
    registry
        .register(
            HealthCheck::new(
                "payments-breaker:state",
                breaker_check(move || state_of(&a)),
            )
            .interval(std::time::Duration::from_millis(1)),
        )
        .unwrap();
    let critical = HealthRegistry::new();
    critical
        .register(
            HealthCheck::new("db-breaker:state", breaker_check(move || state_of(&b)))
                .critical(true)
                .interval(std::time::Duration::from_millis(1)),
        )
        .unwrap();
    // closed, half-open, open → (non-critical overall, critical overall)
    for (s, non_crit, crit, output) in [
        (0, Status::Pass, Status::Pass, None),
        (1, Status::Warn, Status::Warn, Some("circuit half-open")),
        (2, Status::Warn, Status::Fail, Some("circuit open")),
    ] {
        state.store(s, Ordering::SeqCst);
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        let r = registry.report().await;
        assert_eq!(r.status, non_crit, "state {s}");
        assert_eq!(r.checks[0].outcome.output.as_deref(), output);
        assert_eq!(critical.report().await.status, crit, "state {s}");
    }
}

#[tokio::test(start_paused = true)]
async fn saturation_thresholds() {
    let in_use = Arc::new(AtomicUsize::new(0));
    let u = in_use.clone();
    let check = saturation_check(move || (u.load(Ordering::SeqCst), 20), 0.75, 0.95).unwrap();
    let registry = HealthRegistry::new();
    registry
        .register(
            HealthCheck::new("bulkhead:utilization", check)
                .critical(true)
                .interval(std::time::Duration::from_millis(1)),
        )
        .unwrap();
    for (n, want, pct) in [
        (0, Status::Pass, 0.0),
        (14, Status::Pass, 70.0),
        (15, Status::Warn, 75.0),
        (18, Status::Warn, 90.0),
        (19, Status::Fail, 95.0),
        (20, Status::Fail, 100.0),
    ] {
        in_use.store(n, Ordering::SeqCst);
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        let r = registry.report().await;
        assert_eq!(r.status, want, "{n} in use");
        let (value, unit) = r.checks[0].outcome.observed.clone().unwrap();
        assert!((value - pct).abs() < 1e-9, "{n}: {value}");
        assert_eq!(unit, "percent");
    }
    assert_eq!(
        saturation_check(|| (0, 1), 0.0, 1.0).err().unwrap().field(),
        "warn_at"
    );
    assert_eq!(
        saturation_check(|| (0, 1), 0.9, 0.8).err().unwrap().field(),
        "fail_at"
    );
}

#[cfg(feature = "redis")]
mod redis_ping {
    use super::*;
    use std::time::Duration;

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    #[tokio::test]
    async fn ping_passes_against_a_live_redis() {
        let client = redis::Client::open(redis_url()).unwrap();
        let reachable = tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await
        .is_ok_and(|c| c.is_ok());
        if !reachable {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "Redis must be reachable under CI"
            );
            eprintln!("skipping: Redis not reachable at {}", redis_url());
            return;
        }
        let registry = HealthRegistry::new();
        registry
            .register(
                HealthCheck::new("redis:responseTime", palisade_health::redis_check(client))
                    .critical(true)
                    .timeout(Duration::from_secs(2))
                    .component_type("datastore"),
            )
            .unwrap();
        let report = registry.report().await;
        assert_eq!(
            report.status,
            Status::Pass,
            "{:?}",
            report.checks[0].outcome
        );
    }

    #[tokio::test]
    async fn ping_fails_when_redis_is_down() {
        // Port 1 on loopback: connection refused.
        let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
        let registry = HealthRegistry::new();
        registry
            .register(
                HealthCheck::new("redis:responseTime", palisade_health::redis_check(client))
                    .critical(true)
                    .timeout(Duration::from_millis(500)),
            )
            .unwrap();
        let report = registry.report().await;
        assert_eq!(report.status, Status::Fail);
        assert!(report.checks[0].outcome.output.is_some());
    }

    #[tokio::test]
    async fn a_failing_redis_reports_a_fixed_message_without_the_error() {
        // The error would name the host and port (and the URL may carry credentials);
        // /health can be public, so only the fixed text goes out.
        let client = redis::Client::open("redis://ops-user:hunter2@127.0.0.1:1/3").unwrap();
        let registry = HealthRegistry::new();
        registry
            .register(
                HealthCheck::new("redis:responseTime", palisade_health::redis_check(client))
                    .critical(true)
                    .timeout(Duration::from_secs(2)),
            )
            .unwrap();
        let report = registry.report().await;
        assert_eq!(report.status, Status::Fail);
        assert_eq!(
            report.checks[0].outcome.output.as_deref(),
            Some(palisade_health::REDIS_UNAVAILABLE)
        );
        assert_eq!(palisade_health::REDIS_UNAVAILABLE, "redis unavailable");
        let json = format!("{report:?}");
        for secret in ["hunter2", "ops-user", "127.0.0.1", "refused"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
    }
}
