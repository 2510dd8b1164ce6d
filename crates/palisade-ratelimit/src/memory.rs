//! In-memory keyed state with bounded memory.
//!
//! One `DashMap` entry per key holds the TATs of its quotas (`[u64; 4]`). A key whose TATs
//! are all in the past is indistinguishable from a key never seen, so dropping it loses
//! nothing: such *idle* keys are swept every `idle_sweep_interval` (by whichever request
//! inserts a new key first after the interval) and whenever the map reaches its key cap.
//! If the cap is still reached after that sweep, the keys closest to full are dropped
//! first (lossy: those keys get their burst back early), down to 90 % of the cap; nginx's
//! `limit_req` drops its least recently used states in the same situation.
//!
//! Keys are stored as their 64-bit hash (SipHash with a per-limiter random seed, so clients
//! cannot aim collisions at each other), whatever the key type: no key bytes live on the
//! heap. Bytes per key: the entry `(u64, Slot)` is 8 + 32 = 40 bytes plus one control byte
//! in a hashbrown table kept at most 7/8 full and sized in powers of two per shard, so
//! 47 to 94 bytes per tracked key in steady state. `tests/memory.rs` measured a peak of
//! about 108 bytes of live heap per tracked key with 1,000,000 distinct keys and a cap of
//! 50,000 (table growth keeps the old and new tables for a moment). With concurrent
//! inserts the cap can be exceeded by at most the number of threads inserting at once.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use palisade_core::clock::{Clock, nanos};

use crate::gcra::{self, RateLimitDecision};
use crate::quota::{MAX_QUOTAS, Quota};

/// The per-key state: one TAT per quota, nanoseconds since the store's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    tats: [u64; MAX_QUOTAS],
}

/// Default cap on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Default interval between sweeps of idle keys.
pub const DEFAULT_IDLE_SWEEP: Duration = Duration::from_secs(60);

/// A hasher for keys that are already hashes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The in-memory store of a limiter, keyed by key hash.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    map: DashMap<u64, Slot, BuildHasherDefault<IdHasher>>,
    clock: Clock,
    len: AtomicUsize,
    max_keys: usize,
    sweep_every_ns: u64,
    last_sweep_ns: AtomicU64,
}

impl MemoryStore {
    pub(crate) fn new(max_keys: usize, idle_sweep: Duration) -> Self {
        Self {
            map: DashMap::default(),
            clock: Clock::new(),
            len: AtomicUsize::new(0),
            max_keys: max_keys.max(1),
            sweep_every_ns: nanos(idle_sweep),
            last_sweep_ns: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the store's start, plus one so that 0 means "never".
    fn now_ns(&self) -> u64 {
        self.clock.now().saturating_add(1)
    }

    /// Number of tracked keys.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Decides a request for `key` now.
    #[inline]
    pub(crate) fn decide(
        &self,
        key: u64,
        quotas: &[Quota],
        max_wait: Option<Duration>,
    ) -> RateLimitDecision {
        let max_wait = max_wait.map(nanos);
        let now = self.now_ns();
        if let Some(mut slot) = self.map.get_mut(&key) {
            return gcra::decide(&mut slot.tats, quotas, now, max_wait);
        }
        self.make_room(now);
        match self.map.entry(key) {
            Entry::Occupied(mut o) => gcra::decide(&mut o.get_mut().tats, quotas, now, max_wait),
            Entry::Vacant(v) => {
                let mut tats = [0; MAX_QUOTAS];
                let d = gcra::decide(&mut tats, quotas, now, max_wait);
                if d.is_allowed() {
                    v.insert(Slot { tats });
                    self.len.fetch_add(1, Ordering::Relaxed);
                }
                d
            }
        }
    }

    /// Before inserting a key: periodic idle sweep, and eviction at the cap.
    fn make_room(&self, now: u64) {
        let last = self.last_sweep_ns.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.sweep_every_ns
            && self
                .last_sweep_ns
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.evict_older_than(now);
        }
        if self.len() < self.max_keys {
            return;
        }
        self.evict_older_than(now);
        let target = self.max_keys - self.max_keys / 10 - 1;
        let mut slack: u64 = 1_000_000; // 1 ms
        while self.len() > target {
            self.evict_older_than(now.saturating_add(slack));
            if slack == u64::MAX {
                break;
            }
            slack = slack.saturating_mul(2);
        }
    }

    /// Drops every key whose TATs are all at or before `cutoff`.
    fn evict_older_than(&self, cutoff: u64) -> usize {
        let mut removed = 0;
        self.map.retain(|_, slot| {
            let keep = slot.tats.iter().any(|&t| t > cutoff);
            removed += usize::from(!keep);
            keep
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Sweeps idle keys now; returns how many were dropped.
    pub(crate) fn sweep_idle(&self) -> usize {
        self.evict_older_than(self.now_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_swept_and_cap_holds() {
        let q = [Quota::per_second("s", 1).unwrap()];
        let store = MemoryStore::new(100, Duration::from_secs(10));
        for k in 0..100 {
            assert!(store.decide(k, &q, None).is_allowed());
        }
        assert_eq!(store.len(), 100);
        assert!(!store.decide(5, &q, None).is_allowed());
        // The cap is reached: the next new key evicts the keys closest to full.
        assert!(store.decide(1000, &q, None).is_allowed());
        assert!(store.len() <= 100);
        tokio::time::advance(Duration::from_secs(2)).await;
        let n = store.len();
        assert!(n >= 1);
        assert_eq!(store.sweep_idle(), n);
        assert_eq!(store.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_sweep_on_insert() {
        let q = [Quota::per_second("s", 1).unwrap()];
        let store = MemoryStore::new(1000, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(11)).await;
        for k in 0..10 {
            store.decide(k, &q, None);
        }
        assert_eq!(store.len(), 10);
        tokio::time::advance(Duration::from_secs(11)).await;
        store.decide(99, &q, None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn id_hasher_passes_hashes_through_and_folds_bytes() {
        let mut h = IdHasher::default();
        h.write_u64(0xdead_beef);
        assert_eq!(h.finish(), 0xdead_beef);
        let mut h = IdHasher::default();
        h.write(&[0x12, 0x34, 0xff]);
        assert_eq!(h.finish(), 0x12_34ff);
        // The top byte wraps around onto the new one: XOR, not OR or AND.
        let mut h = IdHasher(0xff00_0000_0000_0000);
        h.write(&[0x0f]);
        assert_eq!(h.finish(), 0xf0);
    }

    /// Below the cap and before the sweep interval, an idle key is left alone (no sweep on
    /// every insert): it is still counted.
    #[tokio::test(start_paused = true)]
    async fn idle_keys_stay_until_the_sweep_interval() {
        let q = [Quota::per_second("s", 1).unwrap()];
        let store = MemoryStore::new(1000, Duration::from_secs(3600));
        assert!(store.decide(1, &q, None).is_allowed());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(store.decide(2, &q, None).is_allowed());
        assert_eq!(store.len(), 2);
    }

    /// A key whose TAT is exactly now is idle and swept.
    #[tokio::test(start_paused = true)]
    async fn a_key_due_exactly_now_is_swept() {
        let q = [Quota::per_second("s", 1).unwrap()];
        let store = MemoryStore::new(1000, Duration::from_secs(3600));
        assert!(store.decide(1, &q, None).is_allowed());
        tokio::time::advance(Duration::from_nanos(999_999_999)).await;
        assert_eq!(store.sweep_idle(), 0);
        assert_eq!(store.len(), 1);
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert_eq!(store.sweep_idle(), 1);
        assert_eq!(store.len(), 0);
    }

    /// At the cap, the keys closest to full are dropped until at most 90 % of the cap
    /// minus one remain, doubling the slack each round and stopping as soon as that holds.
    #[tokio::test(start_paused = true)]
    async fn eviction_at_the_cap_stops_at_ninety_percent() {
        // Emission 1 s, burst 100: key k, asked k + 1 times, is full again in k + 1 s, so
        // the rounds at slack 1.024 s, 2.048 s, 4.096 s, 8.192 s drop keys 0, 1, 2-3, 4-7.
        // Cap 30, target 26: three rounds (26 left). Cap 40, target 35: four rounds (32
        // left; a target of 36 would stop after three).
        let q = [Quota::new("q", 100, Duration::from_secs(100))
            .unwrap()
            .burst(100)];
        for (cap, dropped) in [(30u64, 4u64), (40, 8)] {
            let store = MemoryStore::new(usize::try_from(cap).unwrap(), Duration::from_secs(3600));
            for k in 0..cap {
                for _ in 0..=k {
                    assert!(store.decide(k, &q, None).is_allowed());
                }
            }
            assert_eq!(store.len() as u64, cap);
            assert!(store.decide(1000, &q, None).is_allowed());
            assert_eq!(store.len() as u64, cap - dropped + 1, "cap {cap}");
            // The dropped keys got their burst back; the next one did not.
            for k in 0..dropped {
                assert_eq!(
                    store.decide(k, &q, None).states()[0].remaining,
                    99,
                    "key {k}"
                );
            }
            assert_eq!(
                store.decide(dropped, &q, None).states()[0].remaining,
                100 - (dropped + 2),
                "cap {cap}"
            );
        }
    }

    /// The store's clock starts at 1 ns ("0 means never"), so the first periodic sweep is
    /// due when that clock reads `idle_sweep`: one nanosecond before `idle_sweep` of real
    /// time has passed.
    #[tokio::test(start_paused = true)]
    async fn the_first_periodic_sweep_is_measured_on_the_store_clock() {
        let q = [Quota::per_second("s", 1).unwrap()];
        let store = MemoryStore::new(1000, Duration::from_secs(10));
        assert!(store.decide(1, &q, None).is_allowed());
        tokio::time::advance(Duration::from_secs(10) - Duration::from_nanos(1)).await;
        assert!(store.decide(2, &q, None).is_allowed());
        assert_eq!(store.len(), 1);
    }
}
