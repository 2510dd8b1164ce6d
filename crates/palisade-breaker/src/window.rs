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
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n() {
        let mut w = Window::new(SlidingWindow::Count(3));
        for (f, s) in [(true, false), (true, true), (false, false), (false, false)] {
            w.record(f, s, Duration::ZERO);
        }
        // The first failure fell out.
        assert_eq!(
            w.totals(),
            Totals {
                calls: 3,
                failed: 1,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_evicts_old_seconds() {
        let mut w = Window::new(SlidingWindow::Time(2));
        w.record(true, false, Duration::from_millis(100));
        w.record(false, false, Duration::from_millis(1_500));
        assert_eq!(
            w.totals(),
            Totals {
                calls: 2,
                failed: 1,
                slow: 0
            }
        );
        w.advance(Duration::from_millis(2_100)); // second 0 is out of [1, 2]
        assert_eq!(
            w.totals(),
            Totals {
                calls: 1,
                failed: 0,
                slow: 0
            }
        );
        w.advance(Duration::from_secs(10));
        assert_eq!(w.totals(), Totals::default());
    }

    #[test]
    fn an_outcome_recorded_out_of_clock_order_does_not_underflow() {
        // Two calls end at 5.5 s and 4.9 s but take the lock in the other order.
        let mut w = Window::new(SlidingWindow::Time(10));
        w.record(true, false, Duration::from_millis(5_500));
        w.record(false, true, Duration::from_millis(4_900));
        // The later second's bucket is dropped (it is "ahead" of the clock being recorded).
        assert_eq!(
            w.totals(),
            Totals {
                calls: 1,
                failed: 0,
                slow: 1
            }
        );
    }

    proptest::proptest! {
        // The running totals always equal a recount of the last N outcomes.
        #[test]
        fn count_totals_match_recount(n in 1u32..20, outcomes in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY), 0..100)) {
            let mut w = Window::new(SlidingWindow::Count(n));
            for &(f, s) in &outcomes { w.record(f, s, Duration::ZERO); }
            let tail = &outcomes[outcomes.len().saturating_sub(n as usize)..];
            let want = Totals {
                calls: tail.len() as u32,
                failed: tail.iter().filter(|o| o.0).count() as u32,
                slow: tail.iter().filter(|o| o.1).count() as u32,
            };
            proptest::prop_assert_eq!(w.totals(), want);
        }

        // Same for the time window: totals equal a recount of the calls in the last N seconds.
        #[test]
        fn time_totals_match_recount(n in 1u32..10, calls in proptest::collection::vec((0u64..30_000, proptest::bool::ANY), 0..80)) {
            let mut calls = calls;
            calls.sort_by_key(|c| c.0);
            let mut w = Window::new(SlidingWindow::Time(n));
            for &(ms, f) in &calls { w.record(f, false, Duration::from_millis(ms)); }
            if let Some(&(last, _)) = calls.last() {
                let sec = last / 1000;
                let lo = (sec + 1).saturating_sub(u64::from(n));
                let tail: Vec<_> = calls.iter().filter(|c| c.0 / 1000 >= lo).collect();
                proptest::prop_assert_eq!(w.totals().calls, tail.len() as u32);
                proptest::prop_assert_eq!(w.totals().failed, tail.iter().filter(|c| c.1).count() as u32);
            }
        }
    }
}

/// Tests of the lock-free recording: threads racing on one window leave totals that equal a
/// recount of what the window holds.
#[cfg(test)]
mod shared_tests {
    use super::*;
    use std::sync::Arc;

    /// Four threads record `per_thread` outcomes each (thread `i` fails every `i + 2`th
    /// call and is slow every `i + 3`th), `at(thread, call)` giving the time.
    fn race(w: &Arc<Window>, per_thread: u32, at: fn(u32, u32) -> Duration) -> Totals {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let mut mine = Totals::default();
                    for c in 0..per_thread {
                        let (f, s) = (c % (i + 2) == 0, c % (i + 3) == 0);
                        w.add(f, s, at(i, c));
                        mine.add(f, s);
                    }
                    mine
                })
            })
            .collect();
        let mut all = Totals::default();
        for t in threads {
            let mine = t.join().unwrap();
            all.calls += mine.calls;
            all.failed += mine.failed;
            all.slow += mine.slow;
        }
        all
    }

    #[test]
    fn racing_outcomes_all_count_in_a_window_large_enough() {
        let w = Arc::new(Window::new(SlidingWindow::Count(10_000)));
        let all = race(&w, 2_500, |_, _| Duration::ZERO);
        assert_eq!(all.calls, 10_000);
        assert_eq!(w.totals(), all);
        assert_eq!(w.recount(), all);
    }

    #[test]
    fn racing_outcomes_in_a_small_count_window_match_its_slots() {
        let w = Arc::new(Window::new(SlidingWindow::Count(7)));
        race(&w, 20_000, |_, _| Duration::ZERO);
        assert_eq!(w.totals().calls, 7);
        assert_eq!(w.totals(), w.recount());
    }

    #[test]
    fn racing_outcomes_in_a_time_window_match_its_buckets() {
        let w = Arc::new(Window::new(SlidingWindow::Time(3)));
        // Each thread walks through 10 seconds; the window keeps the last 3 it saw.
        race(&w, 20_000, |_, c| Duration::from_millis(u64::from(c) / 2));
        assert_eq!(w.totals(), w.recount());
        assert!(w.totals().calls > 0);
    }

    #[test]
    fn clearing_while_recording_leaves_consistent_totals() {
        for kind in [SlidingWindow::Count(50), SlidingWindow::Time(2)] {
            let w = Arc::new(Window::new(kind));
            let clearer = {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        w.clear();
                        std::thread::yield_now();
                    }
                })
            };
            race(&w, 5_000, |_, c| Duration::from_millis(u64::from(c)));
            clearer.join().unwrap();
            assert_eq!(w.totals(), w.recount(), "{kind:?}");
            w.clear();
            assert_eq!(w.totals(), Totals::default(), "{kind:?}");
            assert_eq!(w.recount(), Totals::default(), "{kind:?}");
        }
    }

    #[test]
    fn an_outcome_like_the_one_it_replaces_changes_nothing() {
        let w = Window::new(SlidingWindow::Count(2));
        assert!(w.add(false, false, Duration::ZERO), "first fill");
        assert!(w.add(false, false, Duration::ZERO), "second fill");
        assert!(!w.add(false, false, Duration::ZERO), "success over success");
        assert!(w.add(true, false, Duration::ZERO), "failure over success");
        assert!(!w.add(false, false, Duration::ZERO), "success over success");
        assert!(w.add(false, true, Duration::ZERO), "slow over failure");
        assert_eq!(
            w.totals(),
            Totals {
                calls: 2,
                failed: 0,
                slow: 1
            }
        );
        // A time window always changes, and reports dropped buckets.
        let t = Window::new(SlidingWindow::Time(1));
        assert!(t.add(false, false, Duration::ZERO));
        assert!(!t.advance_shared(Duration::from_millis(999)));
        assert!(t.advance_shared(Duration::from_secs(1)));
        assert_eq!(t.totals(), Totals::default());
    }

    #[test]
    fn a_racing_recorders_leftover_in_the_rotated_slot_counts_as_dropped() {
        // A recorder that passed `advance_shared` just before its bucket was emptied adds
        // to a bucket holding no second; the next rotation onto that slot drains it, and that
        // change to the totals must be reported so that the "may trip" check runs. The
        // leftover may be flags without their call yet (the call is added last).
        for (calls, failed, slow) in [(1, 0, 0), (1, 1, 0), (1, 1, 1), (0, 1, 0), (0, 1, 1)] {
            let w = Window::new(SlidingWindow::Time(2));
            let Window::Time {
                buckets, totals, ..
            } = &w
            else {
                unreachable!()
            };
            buckets[0].calls.store(calls, Relaxed);
            buckets[0].failed.store(failed, Relaxed);
            buckets[0].slow.store(slow, Relaxed);
            totals.add(calls, failed, slow);
            assert!(
                w.advance_shared(Duration::from_millis(100)),
                "{calls} {failed} {slow}"
            );
            assert_eq!(w.totals(), Totals::default());
            assert_eq!(w.recount(), Totals::default());
        }
        // Moving to a new second with nothing out of the window and nothing left over drops
        // nothing.
        let w = Window::new(SlidingWindow::Time(2));
        assert!(w.add(true, false, Duration::from_millis(100)));
        assert!(!w.advance_shared(Duration::from_millis(1_200)));
        assert_eq!(w.totals().calls, 1);
    }

    #[test]
    fn only_a_time_window_needs_the_time_of_an_outcome() {
        // The breaker reads the clock for an outcome only when this says so.
        assert!(!Window::new(SlidingWindow::Count(3)).is_timed());
        assert!(Window::new(SlidingWindow::Time(3)).is_timed());
    }

    #[test]
    fn counters_that_raced_below_zero_read_as_zero() {
        assert_eq!(clamp(0u64.wrapping_sub(1)), 0);
        assert_eq!(clamp(5), 5);
        assert_eq!(clamp(u64::from(u32::MAX) + 1), u32::MAX);
    }

    proptest::proptest! {
        #[test]
        fn fastmod_is_remainder(x in proptest::num::u32::ANY, d in 1u32..=10_000) {
            let m = (u64::MAX / u64::from(d)).wrapping_add(1);
            proptest::prop_assert_eq!(fastmod(x, m, d), (x % d) as usize);
        }
    }
}
