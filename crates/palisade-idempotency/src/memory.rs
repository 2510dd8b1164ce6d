//! The in-memory [`Store`]: a bounded map with TTLs on `tokio::time`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{Begin, Fingerprint, Store, StoreError, StoreFuture, StoredResponse};

/// Default most records kept in a [`MemoryStore`].
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
enum State {
    Locked { token: u64, lease_until: Instant },
    Done(Arc<StoredResponse>),
}

#[derive(Debug)]
struct Entry {
    fingerprint: Fingerprint,
    state: State,
    expires: Instant,
}

struct Inner {
    map: Mutex<HashMap<String, Entry>>,
    next_token: AtomicU64,
    max_entries: usize,
}

/// A process-local [`Store`] (and [`DistributedLock`](crate::DistributedLock) base): a
/// `Mutex<HashMap>` with TTLs measured on `tokio::time::Instant` (so paused-time tests work)
/// and at most `max_entries` records. When full, expired records are purged, then completed
/// records closest to expiry are evicted; locks are never evicted (a full store of locks
/// answers [`StoreError`], i.e. 503).
///
/// The mutex is never held across an `.await`. Clones share the records.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("max_entries", &self.inner.max_entries)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MAX_ENTRIES`] records.
    pub fn new() -> Self {
        Self::with_max_entries(DEFAULT_MAX_ENTRIES)
    }

    /// A store holding at most `max_entries` records (at least 1).
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                map: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(1),
                max_entries: max_entries.max(1),
            }),
        }
    }

    /// Number of records, expired ones included until they are purged.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a map half-updated in a way that
        // matters here (each operation is a single insert/remove), so poisoning is ignored.
        self.inner
            .map
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
        let mut map = self.lock();
        let mut took_over_expired = false;
        if let Some(entry) = map.get_mut(key) {
            if entry.expires > now {
                match &entry.state {
                    State::Done(res) => {
                        return Ok(if entry.fingerprint == *fingerprint {
                            Begin::Completed(res.clone())
                        } else {
                            Begin::Mismatch
                        });
                    }
                    State::Locked { lease_until, .. } if *lease_until > now => {
                        return Ok(if entry.fingerprint == *fingerprint {
                            Begin::InFlight
                        } else {
                            Begin::Mismatch
                        });
                    }
                    State::Locked { .. } => took_over_expired = true,
                }
            }
            let token = self.token();
            *entry = Entry {
                fingerprint: *fingerprint,
                state: State::Locked {
                    token,
                    lease_until: now + lease,
                },
                expires: now + ttl.max(lease),
            };
            return Ok(Begin::Started {
                fencing_token: token,
                took_over_expired,
            });
        }
        if map.len() >= self.inner.max_entries {
            Self::make_room(&mut map, now, self.inner.max_entries);
            if map.len() >= self.inner.max_entries {
                return Err(StoreError::new("memory store is full of in-flight locks"));
            }
        }
        let token = self.token();
        map.insert(
            key.to_owned(),
            Entry {
                fingerprint: *fingerprint,
                state: State::Locked {
                    token,
                    lease_until: now + lease,
                },
                expires: now + ttl.max(lease),
            },
        );
        Ok(Begin::Started {
            fencing_token: token,
            took_over_expired,
        })
    }

    fn make_room(map: &mut HashMap<String, Entry>, now: Instant, max: usize) {
        map.retain(|_, e| e.expires > now);
        if map.len() < max {
            return;
        }
        // Evict the completed record closest to expiry (one O(n) pass; only when full).
        let victim = map
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Done(_)))
            .min_by_key(|(_, e)| e.expires)
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            map.remove(&k);
        }
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
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(entry)
                if entry.expires > now
                    && matches!(entry.state, State::Locked { token, .. } if token == fencing_token) =>
            {
                entry.state = State::Done(Arc::new(response.clone()));
                entry.expires = now + ttl;
                true
            }
            _ => false,
        }
    }

    /// Synchronous [`Store::release`].
    pub fn release_sync(&self, key: &str, fencing_token: u64) -> bool {
        let mut map = self.lock();
        let holds = matches!(
            map.get(key),
            Some(Entry { state: State::Locked { token, .. }, .. }) if *token == fencing_token
        );
        if holds {
            map.remove(key);
        }
        holds
    }

    /// Synchronous [`Store::renew`].
    pub fn renew_now(&self, key: &str, fencing_token: u64, lease: Duration) -> bool {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(Entry {
                state: State::Locked { token, lease_until },
                expires,
                ..
            }) if *token == fencing_token && *lease_until > now => {
                *lease_until = now + lease;
                *expires = (*expires).max(now + lease);
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
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;

    const FP_A: Fingerprint = [1; 32];
    const FP_B: Fingerprint = [2; 32];
    const LEASE: Duration = Duration::from_secs(10);
    const TTL: Duration = Duration::from_secs(100);

    fn res(body: &'static str) -> StoredResponse {
        StoredResponse {
            status: StatusCode::CREATED,
            headers: vec![],
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn started(b: Begin) -> u64 {
        match b {
            Begin::Started { fencing_token, .. } => fencing_token,
            other => panic!("expected Started, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle() {
        let s = MemoryStore::new();
        let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
        assert_eq!(
            s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
            Begin::InFlight
        );
        assert_eq!(
            s.begin_now("k", &FP_B, LEASE, TTL).unwrap(),
            Begin::Mismatch
        );
        assert!(!s.complete_now("k", t + 1, &res("x"), TTL));
        assert!(s.complete_now("k", t, &res("x"), TTL));
        assert!(!s.complete_now("k", t, &res("y"), TTL), "completing twice");
        assert_eq!(
            s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
            Begin::Completed(Arc::new(res("x")))
        );
        assert_eq!(
            s.begin_now("k", &FP_B, LEASE, TTL).unwrap(),
            Begin::Mismatch
        );
        tokio::time::advance(TTL).await;
        let t2 = started(s.begin_now("k", &FP_B, LEASE, TTL).unwrap());
        assert!(t2 > t);
    }

    #[tokio::test(start_paused = true)]
    async fn lease_expiry_and_fencing() {
        let s = MemoryStore::new();
        let t1 = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
        tokio::time::advance(LEASE).await;
        match s.begin_now("k", &FP_A, LEASE, TTL).unwrap() {
            Begin::Started {
                fencing_token,
                took_over_expired,
            } => {
                assert!(fencing_token > t1);
                assert!(took_over_expired);
                // The late finisher cannot overwrite; the new holder can.
                assert!(!s.complete_now("k", t1, &res("late"), TTL));
                assert!(!s.release_sync("k", t1));
                assert!(s.complete_now("k", fencing_token, &res("new"), TTL));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
            Begin::Completed(Arc::new(res("new")))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn release_and_renew() {
        let s = MemoryStore::new();
        let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
        tokio::time::advance(LEASE / 2).await;
        assert!(s.renew_now("k", t, LEASE));
        tokio::time::advance(LEASE / 2).await;
        assert_eq!(
            s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
            Begin::InFlight
        );
        assert!(!s.release_sync("k", t + 1));
        assert!(s.release_sync("k", t));
        assert!(s.is_empty());
        started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn bounded() {
        let s = MemoryStore::with_max_entries(2);
        let a = started(s.begin_now("a", &FP_A, LEASE, TTL).unwrap());
        started(s.begin_now("b", &FP_A, LEASE, TTL).unwrap());
        // Full of locks: refuse rather than evict a lock.
        assert!(s.begin_now("c", &FP_A, LEASE, TTL).is_err());
        assert!(s.complete_now("a", a, &res("a"), TTL));
        // A completed record is evicted to make room.
        started(s.begin_now("c", &FP_A, LEASE, TTL).unwrap());
        assert_eq!(s.len(), 2);
        // "a" was the evicted one: asking again finds a full store of locks.
        assert!(s.begin_now("a", &FP_A, LEASE, TTL).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin { key: u8, fp: u8 },
        Complete { key: u8, which: u8 },
        Release { key: u8, which: u8 },
        Advance { secs: u8 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..3, 0u8..2).prop_map(|(key, fp)| Op::Begin { key, fp }),
            (0u8..3, 0u8..3).prop_map(|(key, which)| Op::Complete { key, which }),
            (0u8..3, 0u8..3).prop_map(|(key, which)| Op::Release { key, which }),
            (0u8..15).prop_map(|secs| Op::Advance { secs }),
        ]
    }

    /// Reference model of one key.
    #[derive(Debug, Clone, Copy)]
    enum Model {
        Locked {
            fp: u8,
            token: u64,
            lease_until: u64,
            expires: u64,
        },
        Done {
            fp: u8,
            expires: u64,
        },
    }

    proptest::proptest! {
        /// The store agrees with a simple model under random operations and clock jumps:
        /// one live holder per key, growing tokens, compare-and-set completion, expiry.
        #[test]
        fn agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let s = MemoryStore::new();
                let (lease, ttl) = (10u64, 30u64);
                let mut now = 0u64;
                let mut model: [Option<Model>; 3] = [None; 3];
                let mut tokens: [Vec<u64>; 3] = Default::default();
                let mut last_token = 0;
                for op in ops {
                    match op {
                        Op::Advance { secs } => {
                            tokio::time::advance(Duration::from_secs(u64::from(secs))).await;
                            now += u64::from(secs);
                        }
                        Op::Begin { key, fp } => {
                            let k = key.to_string();
                            let got = s.begin_now(&k, &[fp; 32], Duration::from_secs(lease), Duration::from_secs(ttl)).unwrap();
                            let m = &mut model[key as usize];
                            let live = m.filter(|m| match *m {
                                Model::Locked { expires, .. } | Model::Done { expires, .. } => expires > now,
                            });
                            match (live, &got) {
                                (Some(Model::Done { fp: f, .. }), Begin::Completed(_)) => assert_eq!(f, fp),
                                (Some(Model::Done { fp: f, .. } | Model::Locked { fp: f, .. }), Begin::Mismatch) => assert_ne!(f, fp),
                                (Some(Model::Locked { fp: f, lease_until, .. }), Begin::InFlight) => {
                                    assert_eq!(f, fp);
                                    assert!(lease_until > now);
                                }
                                (prev, Begin::Started { fencing_token, took_over_expired }) => {
                                    match prev {
                                        None => assert!(!took_over_expired),
                                        Some(Model::Locked { lease_until, .. }) => {
                                            assert!(lease_until <= now, "two live holders");
                                            assert!(took_over_expired);
                                        }
                                        Some(Model::Done { .. }) => panic!("started over a live record"),
                                    }
                                    assert!(*fencing_token > last_token, "tokens grow");
                                    last_token = *fencing_token;
                                    tokens[key as usize].push(*fencing_token);
                                    *m = Some(Model::Locked { fp, token: *fencing_token, lease_until: now + lease, expires: now + ttl });
                                }
                                (prev, other) => panic!("model {prev:?} but store said {other:?}"),
                            }
                        }
                        Op::Complete { key, which } | Op::Release { key, which } => {
                            let Some(&token) = tokens[key as usize].iter().rev().nth(which as usize) else { continue };
                            let k = key.to_string();
                            let m = &mut model[key as usize];
                            let holds = matches!(*m, Some(Model::Locked { token: t, expires, .. }) if t == token && expires > now);
                            if matches!(op, Op::Complete { .. }) {
                                assert_eq!(s.complete_now(&k, token, &res("r"), Duration::from_secs(ttl)), holds);
                                if holds {
                                    let Some(Model::Locked { fp, .. }) = *m else { unreachable!() };
                                    *m = Some(Model::Done { fp, expires: now + ttl });
                                }
                            } else {
                                let holds_any = matches!(*m, Some(Model::Locked { token: t, .. }) if t == token);
                                assert_eq!(s.release_sync(&k, token), holds_any);
                                if holds_any {
                                    *m = None;
                                }
                            }
                        }
                    }
                }
            });
        }
    }
}
