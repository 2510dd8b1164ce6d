//! Sliding windows of call outcomes (Resilience4j's COUNT_BASED and TIME_BASED).
//!
//! Both keep running totals and subtract what falls out of the window, so reading the rates
//! is O(1). All storage is allocated once, when the breaker is built.

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
    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failed -= other.failed;
        self.slow -= other.slow;
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

#[derive(Debug)]
pub(crate) enum Window {
    Count {
        ring: Box<[u8]>,
        next: usize,
        totals: Totals,
    },
    Time {
        buckets: Box<[(u64, Totals)]>,
        totals: Totals,
    },
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count(n) => Self::Count {
                ring: vec![0; n as usize].into_boxed_slice(),
                next: 0,
                totals: Totals::default(),
            },
            SlidingWindow::Time(n) => Self::Time {
                buckets: vec![(u64::MAX, Totals::default()); n as usize].into_boxed_slice(),
                totals: Totals::default(),
            },
        }
    }

    /// Records one outcome at `elapsed` since the breaker's epoch.
    pub(crate) fn record(&mut self, failed: bool, slow: bool, elapsed: Duration) {
        match self {
            Self::Count { ring, next, totals } => {
                let old = ring[*next];
                if old & USED != 0 {
                    totals.sub(Totals {
                        calls: 1,
                        failed: u32::from(old & FAILED != 0),
                        slow: u32::from(old & SLOW != 0),
                    });
                }
                // The flags are disjoint bits, so `|` and `^` give the same byte: the two
                // `| → ^` mutants here are equivalent (excluded in `.cargo/mutants.toml`).
                ring[*next] = USED | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
                *next = (*next + 1) % ring.len();
                totals.add(failed, slow);
            }
            Self::Time { .. } => {
                self.advance(elapsed);
                let Self::Time { buckets, totals } = self else {
                    unreachable!()
                };
                let sec = elapsed.as_secs();
                let slot = &mut buckets[(sec % buckets.len() as u64) as usize];
                slot.1.add(failed, slow);
                totals.add(failed, slow);
            }
        }
    }

    /// Drops buckets older than the window (time-based only).
    pub(crate) fn advance(&mut self, elapsed: Duration) {
        if let Self::Time { buckets, totals } = self {
            let sec = elapsed.as_secs();
            let n = buckets.len() as u64;
            let slot = &mut buckets[(sec % n) as usize];
            if slot.0 != sec {
                // Evict every bucket whose second is out of the window [sec - n + 1, sec]. Only
                // the bucket at `sec % n` could hold `sec` and it does not, so `b.0 > sec` and
                // `b.0 >= sec` agree here (that mutant is equivalent, excluded in
                // `.cargo/mutants.toml`). A bucket ahead of `sec` (a call that ended later
                // recorded first) is dropped too, never subtracted from.
                for b in buckets.iter_mut() {
                    if b.0 != u64::MAX && (b.0 > sec || sec - b.0 >= n) {
                        totals.sub(b.1);
                        *b = (u64::MAX, Totals::default());
                    }
                }
                let slot = &mut buckets[(sec % n) as usize];
                if slot.0 != sec {
                    *slot = (sec, Totals::default());
                }
            }
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        match self {
            Self::Count { totals, .. } | Self::Time { totals, .. } => *totals,
        }
    }

    pub(crate) fn reset(&mut self) {
        match self {
            Self::Count { ring, next, totals } => {
                ring.fill(0);
                *next = 0;
                *totals = Totals::default();
            }
            Self::Time { buckets, totals } => {
                buckets.fill((u64::MAX, Totals::default()));
                *totals = Totals::default();
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
