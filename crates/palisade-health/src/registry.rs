//! The registry: named checks, their cached results and the background runner.

use std::borrow::Cow;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use palisade_core::ConfigError;
use palisade_core::config::check_duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::check::{Check, CheckOutcome, Status};
use crate::report::{CheckReport, HealthReport};

/// Default per-check timeout (Kubernetes' probe `timeoutSeconds` default is 1 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default interval between two runs of a check (Kubernetes' `periodSeconds` default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The output of a check that timed out.
pub const TIMED_OUT: &str = "timed out";
/// The output of a check that panicked.
pub const PANICKED: &str = "check panicked";

/// One check to register: a name, a [`Check`] and how to run it.
///
/// ```
/// use palisade_health::{HealthCheck, check_fn};
/// use std::time::Duration;
/// let check = HealthCheck::new("postgres:responseTime", check_fn(|| async { true }))
///     .critical(true)
///     .timeout(Duration::from_millis(500))
///     .interval(Duration::from_secs(5));
/// # let _ = check;
/// ```
pub struct HealthCheck {
    name: Cow<'static, str>,
    check: Arc<dyn Check>,
    critical: bool,
    timeout: Duration,
    interval: Duration,
    component_type: Option<&'static str>,
}

impl fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}

impl HealthCheck {
    /// A non-critical check named `component:measurement` (e.g. `"redis:responseTime"`),
    /// with the default timeout (1 s) and interval (10 s).
    pub fn new(name: impl Into<Cow<'static, str>>, check: impl Check) -> Self {
        Self {
            name: name.into(),
            check: Arc::new(check),
            critical: false,
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
            component_type: None,
        }
    }
    /// Whether a failure of this check fails the whole service (HTTP 503, not ready).
    /// A failing non-critical check only makes the service `warn`.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
    /// How long one run may take before it is abandoned and reported as `fail`
    /// with output `"timed out"`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// How long a result stays fresh; the background runner re-runs the check this often.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
    /// Applies `critical`, `timeout` and `interval` from a [`CheckConfig`] (validated by
    /// [`HealthRegistry::register`]).
    pub fn with_config(mut self, config: &CheckConfig) -> Self {
        self.critical = config.critical;
        self.timeout = config.timeout;
        self.interval = config.interval;
        self
    }
    /// The draft's `componentType`: `"component"`, `"datastore"` or `"system"`.
    pub fn component_type(mut self, component_type: &'static str) -> Self {
        self.component_type = Some(component_type);
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut parts = self.name.split(':');
        let component = parts.next().unwrap_or_default();
        let measurement = parts.next();
        if component.is_empty() || measurement.is_some_and(str::is_empty) || parts.next().is_some()
        {
            return Err(ConfigError::new(
                "name",
                "must be \"component\" or \"component:measurement\", both parts non-empty and without ':'",
            )
            .within(&self.name));
        }
        let hour = Duration::from_secs(3600);
        check_duration("timeout", self.timeout, Duration::from_millis(1), hour)
            .map_err(|e| e.within(&self.name))?;
        check_duration("interval", self.interval, Duration::from_millis(1), hour)
            .map_err(|e| e.within(&self.name))?;
        if let Some(t) = self.component_type
            && !matches!(t, "component" | "datastore" | "system")
        {
            return Err(ConfigError::new(
                "component_type",
                "must be one of \"component\", \"datastore\", \"system\"",
            )
            .within(&self.name));
        }
        Ok(())
    }
}

/// How a check runs, as plain data (feature `serde`: `Deserialize`, durations like
/// `"500ms"`). Apply it with [`HealthCheck::with_config`].
///
/// ```
/// use palisade_health::{CheckConfig, HealthCheck, HealthRegistry, check_fn};
/// let mut config = CheckConfig::default();
/// config.critical = true;
/// let registry = HealthRegistry::new();
/// registry.register(HealthCheck::new("db", check_fn(|| async { true })).with_config(&config)).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct CheckConfig {
    /// Whether a failure fails the service (default `false`).
    pub critical: bool,
    /// Per-run timeout, 1 ms to 1 h (default 1 s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Duration,
    /// Result lifetime and background period, 1 ms to 1 h (default 10 s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            critical: false,
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
        }
    }
}

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
    refresh: tokio::sync::Mutex<()>,
}

impl Entry {
    fn cached(&self) -> Option<CheckResult> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn fresh(&self, now: Instant) -> Option<CheckResult> {
        self.cached()
            .filter(|r| now.saturating_duration_since(r.at) < self.interval)
    }

    /// Runs the check once with its timeout, caches the result and returns whether the
    /// status changed.
    async fn run(&self) -> (CheckResult, bool) {
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

struct Inner {
    entries: RwLock<Vec<Arc<Entry>>>,
    background: AtomicBool,
    draining: AtomicBool,
    changes: watch::Sender<u64>,
    meta: RwLock<Meta>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Meta {
    pub(crate) version: Option<String>,
    pub(crate) release_id: Option<String>,
    pub(crate) service_id: Option<String>,
    pub(crate) description: Option<String>,
}

/// The set of health checks of a service, with their cached results.
///
/// Cheap to clone; clones share the checks and the cache. Two ways to run checks:
///
/// - **background** ([`spawn_background`](Self::spawn_background), recommended): each check
///   runs in its own task every `interval`; [`report`](Self::report) only reads the cache, so
///   an endpoint hit never waits for a dependency.
/// - **on demand** (no background task): [`report`](Self::report) re-runs the checks whose
///   result is older than their `interval` (one run at a time per check, other callers wait
///   for it and share the result), bounded by each check's timeout.
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<Arc<str>> = self.entries().iter().map(|e| e.name.clone()).collect();
        f.debug_struct("HealthRegistry")
            .field("checks", &names)
            .field("background", &self.inner.background.load(Ordering::Relaxed))
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthRegistry {
    /// An empty registry (reports `pass`).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: RwLock::new(Vec::new()),
                background: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                changes: watch::channel(0).0,
                meta: RwLock::new(Meta::default()),
            }),
        }
    }

    /// Registers a check. Fails if the name is not `component[:measurement]`, is already
    /// registered, or a duration is zero.
    pub fn register(&self, check: HealthCheck) -> Result<&Self, ConfigError> {
        check.validate()?;
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.iter().any(|e| *e.name == *check.name) {
            return Err(ConfigError::new("name", "is already registered").within(&check.name));
        }
        entries.push(Arc::new(Entry {
            name: Arc::from(&*check.name),
            critical: check.critical,
            timeout: check.timeout,
            interval: check.interval,
            component_type: check.component_type,
            check: check.check,
            last: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }));
        drop(entries);
        self.notify();
        Ok(self)
    }

    /// Sets the root `version` field.
    pub fn set_version(&self, version: impl Into<String>) -> &Self {
        self.meta_mut(|m| m.version = Some(version.into()));
        self
    }
    /// Sets the root `releaseId` field.
    pub fn set_release_id(&self, release_id: impl Into<String>) -> &Self {
        self.meta_mut(|m| m.release_id = Some(release_id.into()));
        self
    }
    /// Sets the root `serviceId` field.
    pub fn set_service_id(&self, service_id: impl Into<String>) -> &Self {
        self.meta_mut(|m| m.service_id = Some(service_id.into()));
        self
    }
    /// Sets the root `description` field.
    pub fn set_description(&self, description: impl Into<String>) -> &Self {
        self.meta_mut(|m| m.description = Some(description.into()));
        self
    }

    fn meta_mut(&self, f: impl FnOnce(&mut Meta)) {
        f(&mut self
            .inner
            .meta
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Marks the service as draining (shutting down): readiness and gRPC health report
    /// `fail` / NOT_SERVING whatever the checks say; liveness is unaffected.
    pub fn set_draining(&self, draining: bool) {
        if self.inner.draining.swap(draining, Ordering::SeqCst) != draining {
            self.notify();
        }
    }

    /// Whether [`set_draining`](Self::set_draining) is on.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// A receiver that changes whenever a check's status changes, a check is registered or
    /// draining is toggled (the value is a generation counter).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn notify(&self) {
        self.inner.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.inner
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs every check in its own background task, once at once and then every
    /// `interval`. From then on [`report`](Self::report) only reads cached results.
    /// Checks registered later are not picked up by this runner.
    ///
    /// The tasks stop when the returned [`BackgroundTask`] is dropped.
    pub fn spawn_background(&self) -> BackgroundTask {
        let mut tasks = JoinSet::new();
        for entry in self.entries() {
            let registry = self.clone();
            tasks.spawn(async move {
                loop {
                    let (_, changed) = entry.run().await;
                    if changed {
                        registry.notify();
                    }
                    tokio::time::sleep(entry.interval).await;
                }
            });
        }
        self.inner.background.store(true, Ordering::SeqCst);
        BackgroundTask {
            tasks,
            registry: self.clone(),
        }
    }

    /// Runs (on demand) or reads (background) every check and aggregates them. See the
    /// [crate docs](crate) for the rule.
    pub async fn report(&self) -> HealthReport {
        let entries = self.entries();
        let background = self.inner.background.load(Ordering::SeqCst);
        let checks = futures_util::future::join_all(entries.into_iter().map(|entry| {
            let registry = self.clone();
            async move {
                let result = if background {
                    entry.cached()
                } else {
                    Some(registry.refresh(&entry).await)
                };
                CheckReport::new(&entry, result)
            }
        }))
        .await;
        let meta = self
            .inner
            .meta
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        HealthReport::new(checks, self.is_draining(), meta)
    }

    /// The liveness report: no dependency is checked, only whether the process answers.
    pub fn liveness(&self) -> HealthReport {
        HealthReport::new(Vec::new(), false, Meta::default())
    }

    async fn refresh(&self, entry: &Entry) -> CheckResult {
        if let Some(r) = entry.fresh(Instant::now()) {
            return r;
        }
        let _running = entry.refresh.lock().await;
        // Someone else may have refreshed it while we waited.
        if let Some(r) = entry.fresh(Instant::now()) {
            return r;
        }
        let (result, changed) = entry.run().await;
        if changed {
            self.notify();
        }
        result
    }
}

/// The background check runner; stops every check task when dropped.
pub struct BackgroundTask {
    tasks: JoinSet<()>,
    registry: HealthRegistry,
}

impl fmt::Debug for BackgroundTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundTask")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        self.tasks.abort_all();
        self.registry
            .inner
            .background
            .store(false, Ordering::SeqCst);
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn check_config_deserializes() {
        let c: CheckConfig =
            serde_json::from_str(r#"{"critical":true,"timeout":"250ms"}"#).unwrap();
        assert!(c.critical);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.interval, DEFAULT_INTERVAL);
        assert!(serde_json::from_str::<CheckConfig>(r#"{"timout":"1s"}"#).is_err());
    }
}
