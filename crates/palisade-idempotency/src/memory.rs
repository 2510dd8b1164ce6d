//! The in-memory [`Store`]: in-flight locks in a small map bounded by concurrency,
//! completed records in a `moka` cache bounded by entries and bytes, with TTLs on
//! `tokio::time`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use tokio::time::Instant;

use crate::store::{Begin, Fingerprint, Store, StoreError, StoreFuture, StoredResponse};

/// Default most completed records kept in a [`MemoryStore`].
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Default most bytes of completed records kept in a [`MemoryStore`] (64 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default most in-flight locks in a [`MemoryStore`] (requests executing at once).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;
/// Bytes charged per completed record on top of its key, headers and body: the cache's
/// own bookkeeping (moka's entry, its LRU node and hash-table slot), the `Arc`s and the
/// record's fixed fields. Measured at about 450 bytes on x86-64 with moka 0.12 (test
/// `hostile_keys`), rounded up, so the heap really stays within `max_bytes`.
pub const RECORD_OVERHEAD: u64 = 512;

#[derive(Debug)]
struct Locked {
    fingerprint: Fingerprint,
    token: u64,
    lease_until: Instant,
    expires: Instant,
}

#[derive(Debug)]
struct Done {
    fingerprint: Fingerprint,
    response: Arc<StoredResponse>,
    expires: Instant,
}

struct Inner {
    locks: Mutex<HashMap<String, Locked>>,
    done: Cache<String, Arc<Done>>,
    next_token: AtomicU64,
    max_entries: usize,
    max_bytes: u64,
    max_in_flight: usize,
}

/// A process-local [`Store`] (and [`DistributedLock`](crate::DistributedLock) base).
///
/// - **In-flight locks** live in a `Mutex<HashMap>` of at most `max_in_flight` entries
///   (default [`DEFAULT_MAX_IN_FLIGHT`]), bounded by how many requests execute at once. A lock
///   is never evicted: when the map is full of live locks, `begin` answers [`StoreError`]
///   (503). Expired locks are purged when the map is full.
/// - **Completed records** live in a [`moka`] cache bounded by entries *and* bytes (default
///   [`DEFAULT_MAX_ENTRIES`] and [`DEFAULT_MAX_BYTES`]): each record weighs its key, headers
///   and body plus [`RECORD_OVERHEAD`], and at least `max_bytes / max_entries`, so neither
///   bound can be exceeded. Insertion and eviction are O(1) amortised (least recently used
///   first), whatever the number of keys, so a flood of hostile keys costs each request the
///   same and evicts old completed records rather than scanning them.
///
/// TTLs and leases are measured on `tokio::time::Instant` (so paused-time tests work) and
/// checked on every read; the cache also drops records after [`MAX_TTL`](crate::MAX_TTL) of
/// wall-clock time. The mutex is never held across an `.await`. Clones share the records.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("in_flight", &self.in_flight())
            .field("max_entries", &self.inner.max_entries)
            .field("max_bytes", &self.inner.max_bytes)
            .field("max_in_flight", &self.inner.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn record_weight(key: &str, r: &StoredResponse) -> u64 {
    let headers: usize = r
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 32)
        .sum();
    RECORD_OVERHEAD + (key.len() + headers + r.body.len()) as u64
}

impl MemoryStore {
    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::with_limits(
            DEFAULT_MAX_ENTRIES,
            DEFAULT_MAX_BYTES,
            DEFAULT_MAX_IN_FLIGHT,
        )
    }

    /// A store holding at most `max_entries` completed records (1–100,000,000) within the
    /// default byte bound, and at most `max_entries` (up to [`DEFAULT_MAX_IN_FLIGHT`]) locks.
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self::with_limits(
            max_entries,
            DEFAULT_MAX_BYTES,
            max_entries.min(DEFAULT_MAX_IN_FLIGHT),
        )
    }

    /// A store holding at most `max_entries` completed records (clamped to 1–100,000,000)
    /// weighing at most `max_bytes` (clamped to 1 KiB–1 TiB), and at most `max_in_flight`
    /// locks (clamped to 1–10,000,000).
    pub fn with_limits(max_entries: usize, max_bytes: u64, max_in_flight: usize) -> Self {
        let max_entries = max_entries.clamp(1, 100_000_000);
        let max_bytes = max_bytes.clamp(1024, 1 << 40);
        let max_in_flight = max_in_flight.clamp(1, 10_000_000);
        let floor = (max_bytes / max_entries as u64).max(1);
        let done = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |k: &String, v: &Arc<Done>| {
                u32::try_from(record_weight(k, &v.response).max(floor)).unwrap_or(u32::MAX)
            })
            .eviction_policy(EvictionPolicy::lru())
            .time_to_live(crate::MAX_TTL)
            .build();
        Self {
            inner: Arc::new(Inner {
                locks: Mutex::new(HashMap::new()),
                done,
                next_token: AtomicU64::new(1),
                max_entries,
                max_bytes,
                max_in_flight,
            }),
        }
    }

    /// Number of records (locks and completed), expired ones included until they are purged.
    /// Runs the cache's pending maintenance first, so the count is exact.
    pub fn len(&self) -> usize {
        self.inner.done.run_pending_tasks();
        self.in_flight() + usize::try_from(self.inner.done.entry_count()).unwrap_or(usize::MAX)
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of in-flight locks.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// Bytes charged to the completed records (see [`RECORD_OVERHEAD`]); at most
    /// `max_bytes` once the cache's pending maintenance has run.
    pub fn weighted_size(&self) -> u64 {
        self.inner.done.run_pending_tasks();
        self.inner.done.weighted_size()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Locked>> {
        // Each operation is a single insert/remove/update, so a panic cannot leave the map
        // half-updated in a way that matters: poisoning is ignored.
        self.inner
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn token(&self) -> u64 {
        self.inner.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Synchronous [`Store::begin`].
    pub fn begin_now(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Begin, StoreError> {
        let now = Instant::now();
        let mut locks = self.lock();
        let mut took_over_expired = false;
        if let Some(l) = locks.get(key) {
            if l.expires > now {
                if l.lease_until > now {
                    return Ok(if l.fingerprint == *fingerprint {
                        Begin::InFlight
                    } else {
                        Begin::Mismatch
                    });
                }
                took_over_expired = true;
            }
        } else if let Some(done) = self.inner.done.get(key) {
            if done.expires > now {
                return Ok(if done.fingerprint == *fingerprint {
                    Begin::Completed(done.response.clone())
                } else {
                    Begin::Mismatch
                });
            }
            self.inner.done.invalidate(key);
        }
        let new = Locked {
            fingerprint: *fingerprint,
            token: self.token(),
            lease_until: now + lease,
            expires: now + ttl.max(lease),
        };
        let token = new.token;
        if let Some(slot) = locks.get_mut(key) {
            *slot = new;
        } else {
            if locks.len() >= self.inner.max_in_flight {
                // `expires >= lease_until` always holds (set so here and in `renew_now`), so
                // at `expires == now` the lease test already fails: `>` and `>=` agree in
                // the first comparison (an equivalent mutant, excluded in mutants.toml).
                locks.retain(|_, l| l.expires > now && l.lease_until > now);
                if locks.len() >= self.inner.max_in_flight {
                    return Err(StoreError::new("memory store is full of in-flight locks"));
                }
            }
            locks.insert(key.to_owned(), new);
        }
        Ok(Begin::Started {
            fencing_token: token,
            took_over_expired,
        })
    }

    /// Synchronous [`Store::complete`].
    pub fn complete_now(
        &self,
        key: &str,
        fencing_token: u64,
        response: &StoredResponse,
        ttl: Duration,
    ) -> bool {
        let now = Instant::now();
        let mut locks = self.lock();
        match locks.get(key) {
            Some(l) if l.expires > now && l.token == fencing_token => {
                let fingerprint = l.fingerprint;
                locks.remove(key);
                // Inserted under the lock map's mutex, so no `begin` sees neither record.
                self.inner.done.insert(
                    key.to_owned(),
                    Arc::new(Done {
                        fingerprint,
                        response: Arc::new(response.clone()),
                        expires: now + ttl,
                    }),
                );
                true
            }
            _ => false,
        }
    }

    /// Synchronous [`Store::release`].
    pub fn release_sync(&self, key: &str, fencing_token: u64) -> bool {
        let mut locks = self.lock();
        let holds = matches!(locks.get(key), Some(l) if l.token == fencing_token);
        if holds {
            locks.remove(key);
        }
        holds
    }

    /// Synchronous [`Store::renew`]: extends the lease to `lease` from now if
    /// `fencing_token` holds the lock and its lease has not run out.
    pub fn renew_now(&self, key: &str, fencing_token: u64, lease: Duration) -> bool {
        let now = Instant::now();
        let mut locks = self.lock();
        match locks.get_mut(key) {
            Some(l) if l.token == fencing_token && l.lease_until > now => {
                l.lease_until = now + lease;
                l.expires = l.expires.max(now + lease);
                true
            }
            _ => false,
        }
    }
}

impl Store for MemoryStore {
    fn begin<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> StoreFuture<'a, Begin> {
        let r = self.begin_now(key, fingerprint, lease, ttl);
        Box::pin(std::future::ready(r))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        fencing_token: u64,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let r = self.complete_now(key, fencing_token, response, ttl);
        Box::pin(std::future::ready(Ok(r)))
    }

    fn release<'a>(&'a self, key: &'a str, fencing_token: u64) -> StoreFuture<'a, bool> {
        let r = self.release_sync(key, fencing_token);
        Box::pin(std::future::ready(Ok(r)))
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        fencing_token: u64,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        let r = self.renew_now(key, fencing_token, lease);
        Box::pin(std::future::ready(Ok(r)))
    }

    fn release_now(&self, key: &str, fencing_token: u64) -> bool {
        self.release_sync(key, fencing_token);
        true
    }
}

#[cfg(test)]
mod tests;
