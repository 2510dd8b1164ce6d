//! One registered check at run time: its settings, its cached result, and one run of it
//! (bounded by its timeout, a panic caught and reported as `fail`).

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::check::{Check, CheckOutcome, Status};
use crate::config::HealthCheck;

/// The output of a check that timed out.
pub const TIMED_OUT: &str = "timed out";
/// The output of a check that panicked.
pub const PANICKED: &str = "check panicked";

/// The result of one run, as cached.
#[derive(Debug, Clone)]
pub(crate) struct CheckResult {
    pub(crate) outcome: CheckOutcome,
    pub(crate) time: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) at: Instant,
}

pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    pub(crate) critical: bool,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) component_type: Option<&'static str>,
    check: Arc<dyn Check>,
    last: Mutex<Option<CheckResult>>,
    pub(crate) refresh: tokio::sync::Mutex<()>,
}

impl Entry {
    pub(crate) fn new(check: HealthCheck) -> Self {
        Self {
            name: Arc::from(&*check.name),
            critical: check.critical,
            timeout: check.timeout,
            interval: check.interval,
            component_type: check.component_type,
            check: check.check,
            last: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn cached(&self) -> Option<CheckResult> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn fresh(&self, now: Instant) -> Option<CheckResult> {
        self.cached()
            .filter(|r| now.saturating_duration_since(r.at) < self.interval)
    }

    /// Runs the check once with its timeout, caches the result and returns whether the
    /// status changed.
    pub(crate) async fn run(&self) -> (CheckResult, bool) {
        let start = Instant::now();
        let time = SystemTime::now();
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| self.check.check())) {
            Ok(fut) => {
                match tokio::time::timeout(self.timeout, AssertUnwindSafe(fut).catch_unwind()).await
                {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => CheckOutcome::fail(PANICKED),
                    Err(_) => CheckOutcome::fail(TIMED_OUT),
                }
            }
            Err(_) => CheckOutcome::fail(PANICKED),
        };
        let now = Instant::now();
        let result = CheckResult {
            outcome,
            time,
            duration: now.saturating_duration_since(start),
            at: now,
        };
        if result.outcome.status != Status::Pass {
            tracing::debug!(
                target: "palisade",
                layer = "health",
                event = "check_unhealthy",
                check = &*self.name,
                status = result.outcome.status.as_str(),
                output = result.outcome.output.as_deref().unwrap_or_default(),
            );
        }
        let previous = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(result.clone());
        let changed = previous.is_none_or(|p| p.outcome.status != result.outcome.status);
        (result, changed)
    }
}
