//! Sliding windows of call outcomes (Resilience4j's COUNT_BASED and TIME_BASED).
//!
//! Both keep running totals and subtract what falls out of the window, so reading the rates
//! is O(1). All storage is allocated once, when the breaker is built. The window is shared
//! by every call without a lock: a count window's outcome is one atomic add for its position
//! plus, when the slot's flags change, a swap and one add per changed counter; a time
//! window's is one add per counter, and a short lock once a second to drop old buckets.

// Under `--cfg loom` the slots, buckets, totals and the rotation lock are loom's, so that
// `tests/loom.rs` explores every interleaving of recording, rotating and clearing.
#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(loom)]
use loom::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
#[cfg(loom)]
use loom::sync::atomic::fence;
#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};
#[cfg(not(loom))]
use std::sync::Mutex;
#[cfg(not(loom))]
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
#[cfg(not(loom))]
use std::sync::atomic::fence;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};
use std::time::Duration;

/// Which window the breaker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum SlidingWindow {
    /// The last N calls.
    Count(u32),
    /// The calls of the last N seconds, in one-second buckets.
    Time(u32),
}

/// Totals over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Calls recorded.
    pub calls: u32,
    /// Failed calls.
    pub failed: u32,
    /// Slow calls (successful or not).
    pub slow: u32,
}

impl Totals {
    /// Failure rate in percent, 0 with no calls.
    pub fn failure_rate(&self) -> f32 {
        pct(self.failed, self.calls)
    }
    /// Slow-call rate in percent, 0 with no calls.
    pub fn slow_rate(&self) -> f32 {
        pct(self.slow, self.calls)
    }
    pub(crate) fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failed += u32::from(failed);
        self.slow += u32::from(slow);
    }
}

fn pct(n: u32, d: u32) -> f32 {
    if d == 0 {
        0.0
    } else {
        n as f32 * 100.0 / d as f32
    }
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;
const USED: u8 = 4;

/// A second no bucket holds.
const EMPTY: u64 = u64::MAX;

/// Running totals in atomics. Every change to a ring slot or bucket is mirrored here by the
/// thread that made it, so at rest the totals equal a recount of the window; while two
/// updates race, a reader may see one half of them, so counters are read clamped at zero.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
}

/// A wrapping counter as a non-negative `u32` (a counter that raced below zero reads 0).
fn clamp(v: u64) -> u32 {
    // Below zero it wraps to a huge `u64`, negative as an `i64`.
    u32::try_from((v as i64).max(0)).unwrap_or(u32::MAX)
}

impl Counters {
    fn totals(&self) -> Totals {
        Totals {
            calls: clamp(self.calls.load(Relaxed)),
            failed: clamp(self.failed.load(Relaxed)),
            slow: clamp(self.slow.load(Relaxed)),
        }
    }

    /// Applies one slot's change from the flags `old` to `new`.
    fn replace(&self, old: u8, new: u8) {
        for (bit, counter) in [
            (USED, &self.calls),
            (FAILED, &self.failed),
            (SLOW, &self.slow),
        ] {
            match (old & bit != 0, new & bit != 0) {
                (false, true) => {
                    counter.fetch_add(1, Relaxed);
                }
                (true, false) => {
                    counter.fetch_sub(1, Relaxed);
                }
                _ => {}
            }
        }
    }

    fn add(&self, calls: u64, failed: u64, slow: u64) {
        // Only the counters that change are touched: a success is one atomic add.
        for (n, counter) in [
            (calls, &self.calls),
            (failed, &self.failed),
            (slow, &self.slow),
        ] {
            if n != 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }

    fn sub(&self, calls: u64, failed: u64, slow: u64) {
        for (n, counter) in [
            (calls, &self.calls),
            (failed, &self.failed),
            (slow, &self.slow),
        ] {
            if n != 0 {
                counter.fetch_sub(n, Relaxed);
            }
        }
    }
}

/// One second of a time window.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// The second it holds, [`EMPTY`] if none.
    sec: AtomicU64,
    calls: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
}

impl Bucket {
    fn empty() -> Self {
        Self {
            sec: AtomicU64::new(EMPTY),
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// Empties the bucket, taking what it held out of `totals`. Returns whether it held
    /// anything.
    fn drain(&self, totals: &Counters) -> bool {
        // `calls` first and with `Acquire`, pairing with the recorder's `Release` add of its
        // call after its flags: a drain that takes a call takes its flags too, so a bucket
        // never holds a failure or slow call without its call (a rate above 100 %). A call
        // added after the swap may lose its flags to it: counted, as a fast success.
        let calls = self.calls.swap(0, Acquire);
        let failed = self.failed.swap(0, Relaxed);
        let slow = self.slow.swap(0, Relaxed);
        totals.sub(calls, failed, slow);
        calls | failed | slow != 0
    }
}

/// `x % d` for a 32-bit `x` and a non-zero `d`, by multiplication (Lemire's fastmod):
/// `m` is `u64::MAX / d + 1`, wrapping (0 for `d` = 1, which gives 0).
#[inline]
fn fastmod(x: u32, m: u64, d: u32) -> usize {
    let low = m.wrapping_mul(u64::from(x));
    ((u128::from(low) * u128::from(d)) >> 64) as usize
}

/// A sliding window shared without a lock: outcomes are recorded with atomic operations, and
/// only a time window's move to a new second (at most once a second) takes a short lock.
#[derive(Debug)]
pub(crate) enum Window {
    Count {
        /// Flags of the last `len` outcomes, `USED` once written.
        ring: Box<[AtomicU8]>,
        /// Outcomes recorded so far (wrapping); the next one goes to `next % len`.
        next: AtomicU32,
        /// `u64::MAX / len + 1`, for [`fastmod`].
        magic: u64,
        totals: Counters,
    },
    Time {
        buckets: Box<[Bucket]>,
        /// Serialises moving to a new second.
        rotate: Mutex<()>,
        totals: Counters,
    },
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count(n) => {
                let n = n.max(1);
                Self::Count {
                    ring: (0..n).map(|_| AtomicU8::new(0)).collect(),
                    next: AtomicU32::new(0),
                    magic: (u64::MAX / u64::from(n)).wrapping_add(1),
                    totals: Counters::default(),
                }
            }
            SlidingWindow::Time(n) => Self::Time {
                buckets: (0..n.max(1)).map(|_| Bucket::empty()).collect(),
                rotate: Mutex::new(()),
                totals: Counters::default(),
            },
        }
    }

    #[cfg(test)]
    /// Records one outcome at `elapsed` since the breaker's epoch.
    pub(crate) fn record(&mut self, failed: bool, slow: bool, elapsed: Duration) {
        self.add(failed, slow, elapsed);
    }

    /// Records one outcome at `elapsed` since the breaker's epoch, from any thread. Returns
    /// whether the totals changed: in a full count window, an outcome that replaces one
    /// with the same flags changes nothing, and costs one atomic add and one load.
    #[inline]
    pub(crate) fn add(&self, failed: bool, slow: bool, elapsed: Duration) -> bool {
        match self {
            Self::Count {
                ring,
                next,
                magic,
                totals,
            } => {
                // `ring` has 1..=10,000 slots, so its length fits a `u32`.
                let at = fastmod(next.fetch_add(1, Relaxed), *magic, ring.len() as u32);
                let slot = &ring[at];
                // The flags are disjoint bits, so `|` and `^` give the same byte: the two
                // `| → ^` mutants here are equivalent (excluded in `.cargo/mutants.toml`).
                let new = USED | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
                if slot.load(Relaxed) == new {
                    return false;
                }
                let old = slot.swap(new, Relaxed);
                totals.replace(old, new);
                old != new
            }
            Self::Time {
                buckets, totals, ..
            } => {
                self.advance_shared(elapsed);
                let sec = elapsed.as_secs();
                let b = &buckets[(sec % buckets.len() as u64) as usize];
                // The flags before the call, which is added with `Release` (see `drain`).
                if failed {
                    b.failed.fetch_add(1, Relaxed);
                }
                if slow {
                    b.slow.fetch_add(1, Relaxed);
                }
                b.calls.fetch_add(1, Release);
                totals.add(1, u64::from(failed), u64::from(slow));
                true
            }
        }
    }

    #[cfg(test)]
    /// Drops buckets older than the window (time-based only).
    pub(crate) fn advance(&mut self, elapsed: Duration) {
        self.advance_shared(elapsed);
    }

    /// Drops buckets older than the window (time-based only), from any thread. Returns
    /// whether any was dropped. Lock-free unless `elapsed` starts a new second.
    #[inline]
    pub(crate) fn advance_shared(&self, elapsed: Duration) -> bool {
        let Self::Time {
            buckets,
            rotate,
            totals,
        } = self
        else {
            return false;
        };
        let sec = elapsed.as_secs();
        let n = buckets.len() as u64;
        let slot = &buckets[(sec % n) as usize];
        if slot.sec.load(Relaxed) == sec {
            return false;
        }
        let _rotating = rotate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.sec.load(Relaxed) == sec {
            return false; // another thread moved on while this one waited
        }
        // Evict every bucket whose second is out of the window [sec - n + 1, sec]. Only
        // the bucket at `sec % n` could hold `sec` and it does not, so `b.0 > sec` and
        // `b.0 >= sec` agree here (that mutant is equivalent, excluded in
        // `.cargo/mutants.toml`). A bucket ahead of `sec` (a call that ended later
        // recorded first) is dropped too, never subtracted from.
        let mut dropped = false;
        for b in buckets {
            let s = b.sec.load(Relaxed);
            if s != EMPTY && (s > sec || sec - s >= n) {
                b.drain(totals);
                b.sec.store(EMPTY, Relaxed);
                dropped = true;
            }
        }
        // The slot is empty now (any other second it could hold is out of the window);
        // drain what a racing recorder may have added to it since (that changes the totals
        // too, so it counts as dropped: the caller's "may trip" check must run).
        dropped |= slot.drain(totals);
        slot.sec.store(sec, Relaxed);
        dropped
    }

    /// Whether outcomes need their time (a time window).
    #[inline]
    pub(crate) fn is_timed(&self) -> bool {
        matches!(self, Self::Time { .. })
    }

    pub(crate) fn totals(&self) -> Totals {
        match self {
            Self::Count { totals, .. } | Self::Time { totals, .. } => totals.totals(),
        }
    }

    /// What the window holds, recounted slot by slot (or bucket by bucket): at rest, equal
    /// to [`totals`](Self::totals).
    #[cfg(any(test, loom))]
    pub(crate) fn recount(&self) -> Totals {
        let mut t = Totals::default();
        match self {
            Self::Count { ring, .. } => {
                for s in ring {
                    let f = s.load(Relaxed);
                    t.calls += u32::from(f & USED != 0);
                    t.failed += u32::from(f & FAILED != 0);
                    t.slow += u32::from(f & SLOW != 0);
                }
            }
            Self::Time { buckets, .. } => {
                for b in buckets {
                    t.calls += b.calls.load(Relaxed) as u32;
                    t.failed += b.failed.load(Relaxed) as u32;
                    t.slow += b.slow.load(Relaxed) as u32;
                }
            }
        }
        t
    }

    /// The running totals as signed numbers, not clamped (the loom model checks that none
    /// ever goes below zero at rest).
    #[cfg(loom)]
    pub(crate) fn raw_totals(&self) -> (i64, i64, i64) {
        let (Self::Count { totals, .. } | Self::Time { totals, .. }) = self;
        (
            totals.calls.load(Relaxed) as i64,
            totals.failed.load(Relaxed) as i64,
            totals.slow.load(Relaxed) as i64,
        )
    }

    /// The totals, read after an outcome that changed them: a `SeqCst` fence first. Of the
    /// outcomes racing, the one whose fence comes last in the fences' single order reads
    /// every change made before the others' fences, so the breaker's "may trip" check after
    /// it sees the final totals and a trip is never missed. Without it (before the `loom`
    /// model in `tests/loom.rs` found it), two failures filling an empty window could each
    /// read the other's `calls` or `failed` stale, and neither open the breaker. Only an
    /// outcome that changed the totals pays it.
    #[inline]
    pub(crate) fn totals_after_change(&self) -> Totals {
        fence(SeqCst);
        self.totals()
    }

    /// Empties the window, from any thread. Each slot is swapped out and its flags taken out
    /// of the totals, so an outcome recorded concurrently in a count window is either cleared
    /// or counted, never half of each; in a time window it may be counted without its flags
    /// (see `Bucket::drain`), never its flags without its call.
    pub(crate) fn clear(&self) {
        match self {
            Self::Count { ring, totals, .. } => {
                for slot in ring {
                    totals.replace(slot.swap(0, Relaxed), 0);
                }
            }
            Self::Time {
                buckets,
                rotate,
                totals,
            } => {
                let _rotating = rotate
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for b in buckets {
                    b.drain(totals);
                    b.sec.store(EMPTY, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
