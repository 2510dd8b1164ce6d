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
mod tests;
