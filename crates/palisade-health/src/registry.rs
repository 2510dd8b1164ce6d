//! The registry: the registered checks, the service's metadata and draining flag, and the
//! background runner.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use palisade_core::ConfigError;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::HealthCheck;
use crate::entry::{CheckResult, Entry};
use crate::report::{CheckReport, HealthReport};

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
        entries.push(Arc::new(Entry::new(check)));
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
