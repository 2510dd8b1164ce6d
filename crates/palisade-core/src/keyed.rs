//! [`KeyedStore`]: a bounded map from request keys (tenant, host, route) to per-key state,
//! with least-recently-used eviction at the cap and idle expiry, in O(1) per operation.
//!
//! Keyed middleware (per-key breakers, bulkheads, rate limits) must not let a client that
//! invents keys grow memory or per-request cost without bound. This store gives each key an
//! entry of type `V` (usually an `Arc` of the key's state) and guarantees:
//!
//! - **At most `max_keys` entries.** A new key at the cap evicts the least recently used
//!   entry that is not *pinned*; entries that are pinned (a bulkhead with calls in flight, an
//!   open breaker) are moved to the front and skipped. At most [`EVICTION_SCAN`] entries are
//!   looked at per new key; if all of them are pinned the new key is refused with
//!   [`StoreFull`] and the caller decides (the bulkhead refuses the request, the breaker
//!   lets it through a breaker that is not kept).
//! - **Idle expiry.** An entry not used for `idle` is removed (unless pinned) by the
//!   operations that follow on its shard — at most [`EXPIRY_STEPS`] entries per operation,
//!   so no request pays for a sweep — or all at once by [`KeyedStore::evict_idle`].
//! - **O(1) per operation, no global lock.** Keys hash (SipHash with a random seed, so
//!   clients cannot aim collisions) to one of up to 16 shards; each shard is a `HashMap`
//!   plus an intrusive LRU list in a dense `Vec`, behind its own mutex held for a lookup and
//!   a few pointer updates, never across an `.await`. Stores of fewer than 2,048 keys use
//!   one shard so that the cap is exact per key; larger stores split `max_keys` exactly
//!   across shards, so LRU order and the cap apply per shard (an approximation of a global
//!   LRU, as in `moka`).
//! - **Tokio's clock**, so expiry is testable under `tokio::time::pause()`.
//!
//! Values are cloned out of the store (clone an `Arc`), so nothing is borrowed across the
//! lock. Evicted values are dropped under the shard's lock: their `Drop` must not call back
//! into the same store.
//!
//! ```
//! use palisade_core::keyed::KeyedStore;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let store: KeyedStore<String, Arc<u32>> = KeyedStore::new(2, Duration::from_secs(60));
//! store.get_or_insert_with("a", || Arc::new(1)).unwrap();
//! store.get_or_insert_with("b", || Arc::new(2)).unwrap();
//! store.get("a"); // a is now the most recently used
//! store.get_or_insert_with("c", || Arc::new(3)).unwrap(); // evicts b
//! assert!(store.get("b").is_none());
//! tokio::time::advance(Duration::from_secs(61)).await;
//! store.evict_idle();
//! assert!(store.is_empty());
//! # }
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Entries looked at, from the least recently used end, to make room for a new key.
pub const EVICTION_SCAN: usize = 16;
/// Idle entries removed (or, if pinned, moved to the front) per operation on a shard.
pub const EXPIRY_STEPS: usize = 2;
/// Largest `max_keys` a store accepts (larger values are clamped).
pub const MAX_KEYS: usize = 100_000_000;
/// Keys per shard below which a store has a single shard.
const KEYS_PER_SHARD: usize = 2_048;
const MAX_SHARDS: usize = 16;
const NIL: u32 = u32::MAX;

/// A new key could not be stored: the store is at `max_keys` and the entries looked at to
/// make room were all pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFull;

impl fmt::Display for StoreFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many keys in use")
    }
}

impl std::error::Error for StoreFull {}

struct Node<K, V> {
    key: K,
    value: V,
    used: Instant,
    /// Towards the most recently used end.
    prev: u32,
    /// Towards the least recently used end.
    next: u32,
}

struct Shard<K, V> {
    index: HashMap<K, u32>,
    nodes: Vec<Node<K, V>>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    cap: usize,
}

/// A bounded, idle-expiring map from keys to per-key state; see the [module](self) docs.
pub struct KeyedStore<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    hasher: RandomState,
    idle: Duration,
    max_keys: usize,
    len: AtomicUsize,
    pinned: fn(&V, Instant) -> bool,
}

impl<K, V> fmt::Debug for KeyedStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedStore")
            .field("len", &self.len())
            .field("max_keys", &self.max_keys)
            .field("idle", &self.idle)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

fn never_pinned<V>(_: &V, _: Instant) -> bool {
    false
}

impl<K: Hash + Eq + Clone, V: Clone> KeyedStore<K, V> {
    /// A store of at most `max_keys` entries (clamped to 1–[`MAX_KEYS`]), each removed after
    /// `idle` without use. Nothing is pinned until [`pin_while`](Self::pin_while).
    pub fn new(max_keys: usize, idle: Duration) -> Self {
        let max_keys = max_keys.clamp(1, MAX_KEYS);
        let n = (max_keys / KEYS_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = (0..n)
            .map(|i| {
                // Split exactly: the first `max_keys % n` shards take one more.
                let cap = max_keys / n + usize::from(i < max_keys % n);
                Mutex::new(Shard {
                    index: HashMap::new(),
                    nodes: Vec::new(),
                    head: NIL,
                    tail: NIL,
                    cap,
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            idle,
            max_keys,
            len: AtomicUsize::new(0),
            pinned: never_pinned,
        }
    }

    /// Entries for which `pinned(value, now)` holds are neither evicted at the cap nor
    /// expired when idle (e.g. a bulkhead with calls in flight, an open breaker). It is
    /// called under the shard's lock, on eviction and expiry only: keep it to a few loads.
    #[must_use]
    pub fn pin_while(mut self, pinned: fn(&V, Instant) -> bool) -> Self {
        self.pinned = pinned;
        self
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        let i = if self.shards.len() == 1 {
            0
        } else {
            (self.hasher.hash_one(key) % self.shards.len() as u64) as usize
        };
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, marking it used now.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let mut s = self.shard(key);
        let removed = s.expire(now, self.idle, self.pinned, EXPIRY_STEPS);
        self.len.fetch_sub(removed, Ordering::Relaxed);
        let i = *s.index.get(key)?;
        s.touch(i, now);
        Some(s.nodes[i as usize].value.clone())
    }

    /// The value of `key`, made by `make` and stored if the key is new. At the cap, the least
    /// recently used unpinned entry is evicted first; [`StoreFull`] if none is found within
    /// [`EVICTION_SCAN`] entries (`make` is then not called).
    pub fn get_or_insert_with<Q>(&self, key: &Q, make: impl FnOnce() -> V) -> Result<V, StoreFull>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = Instant::now();
        let mut s = self.shard(key);
        let mut removed = s.expire(now, self.idle, self.pinned, EXPIRY_STEPS);
        if let Some(&i) = s.index.get(key) {
            self.len.fetch_sub(removed, Ordering::Relaxed);
            s.touch(i, now);
            return Ok(s.nodes[i as usize].value.clone());
        }
        if s.nodes.len() >= s.cap {
            if !s.evict_one(now, self.pinned) {
                self.len.fetch_sub(removed, Ordering::Relaxed);
                return Err(StoreFull);
            }
            removed += 1;
        }
        let value = make();
        s.push_front(key.to_owned(), value.clone(), now);
        // One added, `removed` gone.
        if removed == 0 {
            self.len.fetch_add(1, Ordering::Relaxed);
        } else {
            self.len.fetch_sub(removed - 1, Ordering::Relaxed);
        }
        Ok(value)
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut s = self.shard(key);
        let i = *s.index.get(key)?;
        let node = s.unlink_remove(i);
        drop(s);
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(node.value)
    }

    /// Removes every unpinned entry idle for longer than `idle` now. O(n): for a periodic
    /// maintenance task, not for the request path (which expires a few entries as it goes).
    pub fn evict_idle(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let all = s.nodes.len();
            let removed = s.expire(now, self.idle, self.pinned, all);
            drop(s);
            self.len.fetch_sub(removed, Ordering::Relaxed);
        }
    }
}

impl<K, V> KeyedStore<K, V> {
    /// Entries stored now (a snapshot, read without locking).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap on entries.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// How long an entry may go unused before it expires.
    pub fn idle(&self) -> Duration {
        self.idle
    }
}

impl<K: Hash + Eq + Clone, V> Shard<K, V> {
    fn node(&mut self, i: u32) -> &mut Node<K, V> {
        &mut self.nodes[i as usize]
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = self.node(i);
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.node(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.node(next).prev = prev;
        }
    }

    fn link_front(&mut self, i: u32) {
        let head = self.head;
        {
            let n = self.node(i);
            n.prev = NIL;
            n.next = head;
        }
        if head == NIL {
            self.tail = i;
        } else {
            self.node(head).prev = i;
        }
        self.head = i;
    }

    /// Marks `i` used at `now` and moves it to the front.
    fn touch(&mut self, i: u32, now: Instant) {
        self.node(i).used = now;
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }

    fn push_front(&mut self, key: K, value: V, used: Instant) {
        let i = self.nodes.len() as u32;
        self.index.insert(key.clone(), i);
        self.nodes.push(Node {
            key,
            value,
            used,
            prev: NIL,
            next: NIL,
        });
        self.link_front(i);
    }

    /// Removes node `i` from the list, the index and the dense vector (the last node moves
    /// into its place).
    fn unlink_remove(&mut self, i: u32) -> Node<K, V> {
        self.unlink(i);
        let node = self.nodes.swap_remove(i as usize);
        self.index.remove(&node.key);
        if (i as usize) < self.nodes.len() {
            // The former last node now sits at `i`: repoint its neighbours and its index.
            let (prev, next) = {
                let n = self.node(i);
                (n.prev, n.next)
            };
            if prev == NIL {
                self.head = i;
            } else {
                self.node(prev).next = i;
            }
            if next == NIL {
                self.tail = i;
            } else {
                self.node(next).prev = i;
            }
            let key = &self.nodes[i as usize].key;
            if let Some(slot) = self.index.get_mut(key) {
                *slot = i;
            }
        }
        node
    }

    /// Removes up to `steps` entries idle since before `now - idle` from the LRU end; pinned
    /// ones are moved to the front instead. Returns how many were removed.
    fn expire(
        &mut self,
        now: Instant,
        idle: Duration,
        pinned: fn(&V, Instant) -> bool,
        steps: usize,
    ) -> usize {
        let mut removed = 0;
        for _ in 0..steps {
            let t = self.tail;
            if t == NIL || now.saturating_duration_since(self.nodes[t as usize].used) < idle {
                break;
            }
            if pinned(&self.nodes[t as usize].value, now) {
                self.touch(t, now);
            } else {
                self.unlink_remove(t);
                removed += 1;
            }
        }
        removed
    }

    /// Evicts the least recently used unpinned entry among the last [`EVICTION_SCAN`].
    fn evict_one(&mut self, now: Instant, pinned: fn(&V, Instant) -> bool) -> bool {
        for _ in 0..EVICTION_SCAN {
            let t = self.tail;
            if t == NIL {
                return false;
            }
            if pinned(&self.nodes[t as usize].value, now) {
                // Looked at again only after every other entry.
                self.touch(t, now);
            } else {
                self.unlink_remove(t);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MIN: Duration = Duration::from_secs(60);

    fn keys<V: Clone>(s: &KeyedStore<u32, V>) -> Vec<u32> {
        let mut v: Vec<u32> = s
            .shards
            .iter()
            .flat_map(|sh| sh.lock().unwrap().index.keys().copied().collect::<Vec<_>>())
            .collect();
        v.sort_unstable();
        v
    }

    /// Walks each shard's list both ways and checks it against the index.
    fn check<V: Clone>(s: &KeyedStore<u32, V>) {
        let mut total = 0;
        for sh in &s.shards {
            let sh = sh.lock().unwrap();
            assert_eq!(sh.index.len(), sh.nodes.len());
            assert!(sh.nodes.len() <= sh.cap);
            let mut fwd = Vec::new();
            let mut i = sh.head;
            let mut prev = NIL;
            while i != NIL {
                assert_eq!(sh.nodes[i as usize].prev, prev);
                assert_eq!(sh.index[&sh.nodes[i as usize].key], i);
                fwd.push(i);
                prev = i;
                i = sh.nodes[i as usize].next;
            }
            assert_eq!(prev, sh.tail);
            assert_eq!(fwd.len(), sh.nodes.len());
            total += fwd.len();
        }
        assert_eq!(total, s.len());
    }

    #[tokio::test(start_paused = true)]
    async fn evicts_the_least_recently_used_at_the_cap() {
        let s: KeyedStore<u32, u32> = KeyedStore::new(3, MIN);
        for k in 0..3 {
            assert_eq!(s.get_or_insert_with(&k, || k * 10), Ok(k * 10));
        }
        assert_eq!(s.get(&0), Some(0));
        assert_eq!(s.get_or_insert_with(&3, || 30), Ok(30)); // evicts 1
        assert_eq!(keys(&s), [0, 2, 3]);
        assert_eq!(s.get_or_insert_with(&2, || 99), Ok(20), "kept, not remade");
        assert_eq!(s.get_or_insert_with(&4, || 40), Ok(40)); // evicts 0
        assert_eq!(keys(&s), [2, 3, 4]);
        assert_eq!(s.len(), 3);
        check(&s);
        assert_eq!(s.remove(&3), Some(30));
        assert_eq!(s.remove(&3), None);
        assert_eq!(keys(&s), [2, 4]);
        check(&s);
    }

    #[tokio::test(start_paused = true)]
    async fn pinned_entries_survive_the_cap_and_expiry() {
        let s: KeyedStore<u32, Arc<()>> =
            KeyedStore::new(2, MIN).pin_while(|v, _| Arc::strong_count(v) > 1);
        let held = s.get_or_insert_with(&0, || Arc::new(())).unwrap();
        s.get_or_insert_with(&1, || Arc::new(())).unwrap();
        s.get(&1);
        // 0 is least recently used but pinned: 1 goes.
        s.get_or_insert_with(&2, || Arc::new(())).unwrap();
        assert_eq!(keys(&s), [0, 2]);
        let held2 = s.get(&2).unwrap();
        assert_eq!(s.get_or_insert_with(&3, || Arc::new(())), Err(StoreFull));
        assert_eq!(keys(&s), [0, 2]);
        tokio::time::advance(2 * MIN).await;
        s.evict_idle();
        assert_eq!(keys(&s), [0, 2], "pinned entries do not expire");
        drop((held, held2));
        tokio::time::advance(2 * MIN).await;
        s.evict_idle();
        assert!(s.is_empty());
        check(&s);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_entries_expire_as_operations_go_by() {
        let s: KeyedStore<u32, u32> = KeyedStore::new(100, MIN);
        for k in 0..5 {
            s.get_or_insert_with(&k, || k).unwrap();
        }
        tokio::time::advance(Duration::from_millis(59_999)).await;
        s.get(&4);
        assert_eq!(s.len(), 5, "not idle yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        // Each operation expires at most EXPIRY_STEPS entries from the LRU end.
        s.get(&99);
        assert_eq!(keys(&s), [2, 3, 4]);
        s.get_or_insert_with(&5, || 5).unwrap();
        assert_eq!(keys(&s), [4, 5], "4 was used a millisecond later");
        check(&s);
    }

    #[tokio::test(start_paused = true)]
    async fn splits_large_caps_exactly_across_shards() {
        let s: KeyedStore<u32, u32> = KeyedStore::new(10_001, MIN);
        assert_eq!(s.shards.len(), 4);
        let caps: usize = s.shards.iter().map(|x| x.lock().unwrap().cap).sum();
        assert_eq!(caps, 10_001);
        for k in 0..50_000 {
            s.get_or_insert_with(&k, || k).unwrap();
            if k % 5_000 == 0 {
                check(&s);
            }
        }
        assert_eq!(s.len(), 10_001);
        check(&s);
        let s: KeyedStore<u32, u32> = KeyedStore::new(usize::MAX, MIN);
        assert_eq!((s.max_keys(), s.shards.len()), (MAX_KEYS, MAX_SHARDS));
    }

    /// A reference model: a vector from most to least recently used, expiring and evicting
    /// from its end exactly as the store documents.
    #[derive(Default)]
    struct Model {
        lru: Vec<(u32, u32, u64)>, // (key, value, last used in ms)
    }

    impl Model {
        fn expire(&mut self, now: u64, idle: u64) {
            for _ in 0..EXPIRY_STEPS {
                match self.lru.last() {
                    Some(&(_, _, used)) if now - used >= idle => {
                        self.lru.pop();
                    }
                    _ => break,
                }
            }
        }
        fn touch(&mut self, i: usize, now: u64) -> u32 {
            let mut e = self.lru.remove(i);
            e.2 = now;
            self.lru.insert(0, e);
            e.1
        }
    }

    proptest::proptest! {
        #[test]
        fn matches_a_reference_lru(
            cap in 1usize..6,
            ops in proptest::collection::vec((0u8..4, 0u32..8, 0u64..40), 1..200),
        ) {
            const IDLE: u64 = 50;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let s: KeyedStore<u32, u32> = KeyedStore::new(cap, Duration::from_millis(IDLE));
                let mut m = Model::default();
                let mut now = 0;
                for (n, (op, key, dt)) in ops.into_iter().enumerate() {
                    let value = n as u32;
                    match op {
                        0 => {
                            m.expire(now, IDLE);
                            let want = m.lru.iter().position(|e| e.0 == key).map(|i| m.touch(i, now));
                            proptest::prop_assert_eq!(s.get(&key), want);
                        }
                        1 => {
                            m.expire(now, IDLE);
                            let want = if let Some(i) = m.lru.iter().position(|e| e.0 == key) {
                                m.touch(i, now)
                            } else {
                                if m.lru.len() >= cap {
                                    m.lru.pop();
                                }
                                m.lru.insert(0, (key, value, now));
                                value
                            };
                            proptest::prop_assert_eq!(s.get_or_insert_with(&key, || value), Ok(want));
                        }
                        2 => {
                            let want = m.lru.iter().position(|e| e.0 == key).map(|i| m.lru.remove(i).1);
                            proptest::prop_assert_eq!(s.remove(&key), want);
                        }
                        _ => {
                            tokio::time::advance(Duration::from_millis(dt)).await;
                            now += dt;
                        }
                    }
                    let mut want: Vec<u32> = m.lru.iter().map(|e| e.0).collect();
                    want.sort_unstable();
                    proptest::prop_assert_eq!(keys(&s), want);
                    check(&s);
                }
                Ok(())
            })?;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn borrowed_lookups() {
        let s: KeyedStore<String, u8> = KeyedStore::new(4, MIN);
        s.get_or_insert_with("a", || 1).unwrap();
        assert_eq!(s.get("a"), Some(1));
        assert_eq!(s.remove("a"), Some(1));
        assert!(s.is_empty());
    }
}
