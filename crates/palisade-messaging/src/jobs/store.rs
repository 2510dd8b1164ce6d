//! The in-memory job store, bounded by count and TTL.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobState {
    /// Accepted, waiting for a concurrency slot.
    Pending,
    /// Running.
    Running,
    /// The inner service answered; the response is stored.
    Succeeded,
    /// The inner service failed, panicked, or its response was too large.
    Failed,
}

impl JobState {
    /// The lowercase name used in the status JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<HeaderValue>,
    pub(crate) body: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) state: JobState,
    pub(crate) response: Option<StoredResponse>,
    pub(crate) error: Option<String>,
    pub(crate) expires: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    jobs: Mutex<HashMap<String, Job>>,
    ttl: Duration,
    max_jobs: usize,
    max_result_bytes: usize,
    prefix: String,
    next: AtomicU64,
    ids: RandomState,
}

/// The jobs of an [`AsyncJobLayer`](super::AsyncJobLayer), shared with the
/// [`JobStatusService`](super::JobStatusService) that serves them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobStore {
    inner: Arc<Inner>,
}

impl Default for JobStore {
    fn default() -> Self {
        Self::new()
    }
}

impl JobStore {
    /// A store under `/jobs`, keeping finished jobs 10 minutes, at most 10 000 jobs and
    /// 1 MiB per result.
    pub fn new() -> Self {
        Self::with_limits("/jobs", Duration::from_secs(600), 10_000, 1 << 20)
            .expect("the defaults are valid")
    }

    /// A store whose status URLs start with `prefix` (`/` then URL-safe characters, no
    /// trailing `/`), keeping finished jobs for `ttl` (1 s to 7 days), at most `max_jobs`
    /// (1 to 10 000 000) and results of at most `max_result_bytes` (up to 64 MiB).
    pub fn with_limits(
        prefix: &str,
        ttl: Duration,
        max_jobs: usize,
        max_result_bytes: usize,
    ) -> Result<Self, ConfigError> {
        let ok_prefix = prefix.len() > 1
            && prefix.len() <= 200
            && prefix.starts_with('/')
            && !prefix.ends_with('/')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
        if !ok_prefix {
            return Err(ConfigError::new(
                "jobs.prefix",
                "must start with `/`, not end with `/`, and hold only letters, digits and -_.~/",
            ));
        }
        check_duration(
            "jobs.ttl",
            ttl,
            Duration::from_secs(1),
            Duration::from_secs(7 * 24 * 3600),
        )?;
        check_range("jobs.max_jobs", max_jobs, 1, 10_000_000)?;
        check_range("jobs.max_result_bytes", max_result_bytes, 0, 64 << 20)?;
        Ok(Self {
            inner: Arc::new(Inner {
                jobs: Mutex::new(HashMap::new()),
                ttl,
                max_jobs,
                max_result_bytes,
                prefix: prefix.to_owned(),
                next: AtomicU64::new(1),
                ids: RandomState::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub(crate) fn max_result_bytes(&self) -> usize {
        self.inner.max_result_bytes
    }

    /// Jobs kept now (expired ones included until the next insert or lookup drops them).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of job `id`, if it is kept and not expired.
    pub fn state(&self, id: &str) -> Option<JobState> {
        self.get(id).map(|j| j.state)
    }

    /// Registers a new pending job; `None` when the store is full of unexpired jobs.
    pub(crate) fn create(&self) -> Option<String> {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        // Unguessable: a per-process random hash of the counter, plus the counter for
        // uniqueness.
        let id = format!("{n:x}-{:016x}", self.inner.ids.hash_one(n));
        let now = Instant::now();
        let mut jobs = self.lock();
        if jobs.len() >= self.inner.max_jobs {
            jobs.retain(|_, j| j.expires.is_none_or(|e| e > now));
            if jobs.len() >= self.inner.max_jobs {
                return None;
            }
        }
        jobs.insert(
            id.clone(),
            Job {
                state: JobState::Pending,
                response: None,
                error: None,
                expires: None,
            },
        );
        Some(id)
    }

    pub(crate) fn running(&self, id: &str) {
        if let Some(j) = self.lock().get_mut(id) {
            j.state = JobState::Running;
        }
    }

    pub(crate) fn finish(&self, id: &str, outcome: Result<StoredResponse, String>) {
        let expires = Some(Instant::now() + self.inner.ttl);
        if let Some(j) = self.lock().get_mut(id) {
            if matches!(j.state, JobState::Succeeded | JobState::Failed) {
                return;
            }
            match outcome {
                Ok(r) => {
                    j.state = JobState::Succeeded;
                    j.response = Some(r);
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.error = Some(e);
                }
            }
            j.expires = expires;
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Job> {
        let now = Instant::now();
        let mut jobs = self.lock();
        match jobs.get(id) {
            Some(j) if j.expires.is_some_and(|e| e <= now) => {
                jobs.remove(id);
                None
            }
            Some(j) => Some(j.clone()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        let ttl = Duration::from_secs(60);
        for bad in ["", "/", "jobs", "/jobs/", "/jo bs", "/j?x"] {
            let e = JobStore::with_limits(bad, ttl, 10, 10).unwrap_err();
            assert_eq!(e.field(), "jobs.prefix", "{bad:?}");
        }
        let e = JobStore::with_limits("/jobs", Duration::ZERO, 10, 10).unwrap_err();
        assert_eq!(e.field(), "jobs.ttl");
        let e = JobStore::with_limits("/jobs", ttl, 0, 10).unwrap_err();
        assert_eq!(e.field(), "jobs.max_jobs");
        let e = JobStore::with_limits("/jobs", ttl, 10, (64 << 20) + 1).unwrap_err();
        assert_eq!(e.field(), "jobs.max_result_bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn ids_are_unique_and_the_cap_counts_unexpired_jobs() {
        let s = JobStore::with_limits("/j", Duration::from_secs(10), 2, 10).unwrap();
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        assert_ne!(a, b);
        assert!(s.create().is_none(), "full of running jobs");
        s.finish(&a, Err("x".into()));
        assert!(s.create().is_none(), "a finished job is kept until its TTL");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(s.create().is_some(), "the expired job made room");
        assert_eq!(s.state(&a), None);
        assert_eq!(s.state(&b), Some(JobState::Pending));
    }
}
