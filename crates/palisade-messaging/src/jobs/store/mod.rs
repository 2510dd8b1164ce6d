//! The job store: in memory, or in Redis behind the `redis` feature; bounded by count and
//! TTL either way.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use palisade_core::config::{check_duration, check_range};
use palisade_core::{BoxError, ConfigError};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => return None,
        })
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

/// The bounds every backend keeps.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) ttl: Duration,
    pub(crate) max_jobs: usize,
    pub(crate) max_result_bytes: usize,
}

#[derive(Debug)]
enum Backend {
    Memory(memory::Memory),
    #[cfg(feature = "redis")]
    Redis(redis::RedisJobs),
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    limits: Limits,
    prefix: String,
    next: AtomicU64,
    ids: RandomState,
}

/// The jobs of an [`AsyncJobLayer`](crate::jobs::AsyncJobLayer), shared with the
/// [`JobStatusService`](crate::jobs::JobStatusService) that serves them. Cheap to clone.
///
/// In memory by default; [`in_redis`](Self::in_redis) (feature `redis`) keeps them in Redis
/// instead, so every instance behind a load balancer serves every job's status.
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
                backend: Backend::Memory(memory::Memory::default()),
                limits: Limits {
                    ttl,
                    max_jobs,
                    max_result_bytes,
                },
                prefix: prefix.to_owned(),
                next: AtomicU64::new(1),
                ids: RandomState::new(),
            }),
        })
    }

    /// The same store (prefix and limits), kept in Redis through `conn` under keys starting
    /// with `key_prefix` (1 to 100 bytes, e.g. `palisade:jobs:`).
    ///
    /// Each job is a hash `<key_prefix>{<prefix>}:job:<id>` expiring `ttl` after it
    /// finished (a job still pending or running expires after the longer of `ttl` and 24 h,
    /// so one whose process died is dropped); `<key_prefix>{<prefix>}:index` is a sorted
    /// set of ids by expiry that enforces `max_jobs` across every instance. Both keys of a
    /// store share the hash tag `{<prefix>}`, so each script touches one Redis Cluster
    /// slot. Every operation is one round trip (a Lua script or `HGETALL`).
    ///
    /// ```no_run
    /// use palisade_messaging::jobs::{AsyncJobLayer, JobStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = redis::Client::open("redis://127.0.0.1:6379")?
    ///     .get_connection_manager()
    ///     .await?;
    /// let store = JobStore::new().in_redis(conn, "palisade:jobs:")?;
    /// let _layer = AsyncJobLayer::new(store);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn in_redis(
        self,
        conn: ::redis::aio::ConnectionManager,
        key_prefix: &str,
    ) -> Result<Self, ConfigError> {
        check_range("jobs.redis.key_prefix", key_prefix.len(), 1, 100)?;
        let inner = &self.inner;
        Ok(Self {
            inner: Arc::new(Inner {
                backend: Backend::Redis(redis::RedisJobs::new(conn, key_prefix, &inner.prefix)),
                limits: inner.limits.clone(),
                prefix: inner.prefix.clone(),
                next: AtomicU64::new(1),
                ids: RandomState::new(),
            }),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub(crate) fn max_result_bytes(&self) -> usize {
        self.inner.limits.max_result_bytes
    }

    /// Jobs kept now (in memory, expired ones included until the next insert or lookup
    /// drops them; in Redis, the unexpired ones).
    pub async fn len(&self) -> Result<usize, BoxError> {
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.len()),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.len().await,
        }
    }

    /// Whether no job is kept.
    pub async fn is_empty(&self) -> Result<bool, BoxError> {
        Ok(self.len().await? == 0)
    }

    /// The state of job `id`, if it is kept and not expired.
    pub async fn state(&self, id: &str) -> Result<Option<JobState>, BoxError> {
        Ok(self.get(id).await?.map(|j| j.state))
    }

    /// Registers a new pending job; `Ok(None)` when the store is full of unexpired jobs.
    pub(crate) async fn create(&self) -> Result<Option<String>, BoxError> {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        // Unguessable: a per-process random hash of the counter, plus the counter for
        // uniqueness (and, in Redis, where several processes share the ids, a second
        // random hash).
        let id = format!("{n:x}-{:016x}", self.inner.ids.hash_one(n));
        let limits = &self.inner.limits;
        let created = match &self.inner.backend {
            Backend::Memory(m) => m.create(&id, limits),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let id = format!("{id}{:016x}", self.inner.ids.hash_one((n, 1u8)));
                return Ok(r.create(&id, limits).await?.then_some(id));
            }
        };
        Ok(created.then_some(id))
    }

    pub(crate) async fn running(&self, id: &str) {
        match &self.inner.backend {
            Backend::Memory(m) => m.running(id),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                if let Err(e) = r.running(id).await {
                    tracing::warn!(target: "palisade::messaging", id, error = %e, "job store: marking running failed");
                }
            }
        }
    }

    pub(crate) async fn finish(&self, id: &str, outcome: Result<StoredResponse, String>) {
        let limits = &self.inner.limits;
        match &self.inner.backend {
            Backend::Memory(m) => m.finish(id, outcome, limits),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                if let Err(e) = r.finish(id, outcome, limits).await {
                    tracing::warn!(target: "palisade::messaging", id, error = %e, "job store: storing the outcome failed");
                }
            }
        }
    }

    /// Marks `id` failed from a destructor (no `.await` there): at once in memory, on a
    /// spawned task in Redis (when a runtime is there to run it).
    pub(crate) fn interrupted(&self, id: &str) {
        let outcome = Err("the job was interrupted".to_owned());
        match &self.inner.backend {
            Backend::Memory(m) => m.finish(id, outcome, &self.inner.limits),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let (store, id) = (self.clone(), id.to_owned());
                    rt.spawn(async move { store.finish(&id, outcome).await });
                }
            }
        }
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<Job>, BoxError> {
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.get(id)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.get(id).await,
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
        let a = s.create().await.unwrap().unwrap();
        let b = s.create().await.unwrap().unwrap();
        assert_ne!(a, b);
        assert!(s.create().await.unwrap().is_none(), "full of running jobs");
        s.finish(&a, Err("x".into())).await;
        assert!(
            s.create().await.unwrap().is_none(),
            "a finished job is kept until its TTL"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(
            s.create().await.unwrap().is_some(),
            "the expired job made room"
        );
        assert_eq!(s.state(&a).await.unwrap(), None);
        assert_eq!(s.state(&b).await.unwrap(), Some(JobState::Pending));
    }
}
