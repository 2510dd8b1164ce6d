//! The latency histogram behind [`HedgeBuilder::percentile`](crate::hedge::HedgeBuilder::percentile):
//! recent successful call latencies, shared by every service a hedge layer builds.
//!
//! Like tower's `hedge::RotatingHistogram`, time is cut into periods and the delay is read
//! from the last *full* period, so it is stable for a whole period and never learned from a
//! handful of calls that just happened. Unlike it, recording takes no lock: a record is one
//! relaxed `fetch_add` on a bucket (plus an atomic load to see whether a period ended), and
//! reading the delay is one atomic load, because the percentile of a finished period is
//! computed once, when the period ends (under a mutex taken once per period, never held
//! across an `.await`).
//!
//! Buckets are log-linear, as HdrHistogram's with 2 significant binary digits more: values
//! below 128 µs are exact, above that a bucket spans at most 1/64 (1.6 %) of its values.
//! Latencies are kept in microseconds up to 2³² µs (71 minutes; longer ones count as that).
//! 1728 `AtomicU32` buckets per side, two sides: 13.5 KiB per layer.
//!
//! Concurrency: a latency recorded by a thread while another rotates the periods may be
//! counted in the neighbouring period or lost; the learned delay is an estimate anyway.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use palisade_core::clock::{Clock, nanos};
use tokio::time::Instant;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// The largest latency recorded, in microseconds.
const MAX_MICROS: u64 = (1 << 32) - 1;
const BUCKETS: usize = bucket(MAX_MICROS) + 1;
/// `delay_micros` when too few calls were recorded in the last full period.
const NO_DELAY: u64 = u64::MAX;

/// The bucket of a value in microseconds.
const fn bucket(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let shift = v.ilog2() - SUB_BITS;
    let m = v >> shift; // in [SUB, 2 SUB)
    (shift as u64 * SUB + m) as usize
}

/// The largest value in bucket `i`, in microseconds.
const fn highest(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let m = i % SUB + SUB;
    ((m + 1) << shift) - 1
}

fn zeroed() -> Box<[AtomicU32]> {
    (0..BUCKETS).map(|_| AtomicU32::new(0)).collect()
}

fn clear(counts: &[AtomicU32]) {
    for c in counts {
        c.store(0, Ordering::Relaxed);
    }
}

/// Latencies of recent successful calls, rotating every `period`.
pub(crate) struct LatencyHistogram {
    percentile: f64,
    min_data_points: u64,
    period: Duration,
    period_nanos: u64,
    clock: Clock,
    /// The period being recorded (periods since the clock's epoch); `counts[current % 2]` collects it,
    /// the other side holds the period before.
    current: AtomicU64,
    /// The delay learned from the last full period, µs; [`NO_DELAY`] if too few calls.
    delay_micros: AtomicU64,
    counts: [Box<[AtomicU32]>; 2],
    rotation: Mutex<()>,
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("percentile", &self.percentile)
            .field("min_data_points", &self.min_data_points)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl LatencyHistogram {
    /// `percentile` in (0, 100], `min_data_points` ≥ 1, `period` ≥ 1 ns (checked by the
    /// builder).
    pub(crate) fn new(percentile: f64, min_data_points: u64, period: Duration) -> Self {
        Self {
            percentile,
            min_data_points,
            period,
            period_nanos: nanos(period).max(1),
            clock: Clock::new(),
            current: AtomicU64::new(0),
            delay_micros: AtomicU64::new(NO_DELAY),
            counts: [zeroed(), zeroed()],
            rotation: Mutex::new(()),
        }
    }

    pub(crate) fn percentile(&self) -> f64 {
        self.percentile
    }

    pub(crate) fn min_data_points(&self) -> u64 {
        self.min_data_points
    }

    pub(crate) fn period(&self) -> Duration {
        self.period
    }

    fn period_at(&self, now: Instant) -> u64 {
        self.clock.nanos_at(now) / self.period_nanos
    }

    /// Records the latency of a successful call that ended at `now`.
    pub(crate) fn record(&self, latency: Duration, now: Instant) {
        let p = self.period_at(now);
        self.rotate_to(p);
        let micros = u64::try_from(latency.as_micros()).map_or(MAX_MICROS, |v| v.min(MAX_MICROS));
        self.counts[(p & 1) as usize][bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The hedging delay: the percentile of the last full period's latencies, rounded up to
    /// the top of its bucket; `None` if that period recorded fewer than `min_data_points`.
    pub(crate) fn delay(&self, now: Instant) -> Option<Duration> {
        self.rotate_to(self.period_at(now));
        match self.delay_micros.load(Ordering::Acquire) {
            NO_DELAY => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn rotate_to(&self, p: u64) {
        if self.current.load(Ordering::Acquire) >= p {
            return; // the same period: no lock
        }
        let _guard = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        let cur = self.current.load(Ordering::Acquire);
        if cur >= p {
            return;
        }
        let delay = if p == cur + 1 {
            // `cur` just ended: it is the new read side; the side before it is reused.
            let delay = self.learn(&self.counts[(cur & 1) as usize]);
            clear(&self.counts[(p & 1) as usize]);
            delay
        } else {
            // Two periods or more went by: everything recorded is too old.
            clear(&self.counts[0]);
            clear(&self.counts[1]);
            NO_DELAY
        };
        self.delay_micros.store(delay, Ordering::Release);
        self.current.store(p, Ordering::Release);
    }

    /// The delay learned from one finished period.
    fn learn(&self, counts: &[AtomicU32]) -> u64 {
        let total: u64 = counts
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .sum();
        if total == 0 || total < self.min_data_points {
            return NO_DELAY;
        }
        // Nearest rank: the smallest latency at or above `percentile` % of the calls.
        let rank = ((self.percentile / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += u64::from(c.load(Ordering::Relaxed));
            if seen >= rank {
                // The top of the bucket, plus the microsecond `record` truncated: never below
                // the latencies it stands for.
                return highest(i) + 1;
            }
        }
        highest(BUCKETS - 1) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        assert_eq!(BUCKETS, 1728);
        let mut prev = 0;
        for i in 1..BUCKETS {
            assert_eq!(highest(i - 1) + 1, lowest(i), "bucket {i}");
            assert_eq!(bucket(lowest(i)), i);
            assert_eq!(bucket(highest(i)), i);
            assert!(highest(i) > prev);
            prev = highest(i);
        }
        assert_eq!(highest(BUCKETS - 1), MAX_MICROS);
    }

    fn lowest(i: usize) -> u64 {
        if i == 0 { 0 } else { highest(i - 1) + 1 }
    }

    proptest! {
        #[test]
        fn bucket_error_is_below_one_sixty_fourth(v in 0u64..=MAX_MICROS) {
            let i = bucket(v);
            prop_assert!(lowest(i) <= v && v <= highest(i));
            // Width at most 1/64 of the bucket's smallest value (exact below 128 µs).
            prop_assert!((highest(i) - lowest(i) + 1) * 64 <= lowest(i).max(64));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn percentile_of_the_last_full_period() {
        let h = LatencyHistogram::new(90.0, 10, Duration::from_secs(10));
        let now = Instant::now();
        for _ in 0..90 {
            h.record(MS(10), now);
        }
        for _ in 0..10 {
            h.record(MS(200), now);
        }
        assert_eq!(h.delay(now), None); // the period has not ended
        tokio::time::advance(Duration::from_secs(10)).await;
        let d = h.delay(Instant::now()).unwrap();
        assert!(d >= MS(10) && d <= MS(10) * 102 / 100, "{d:?}");
        // p95 falls among the slow calls.
        let h = LatencyHistogram::new(95.0, 10, Duration::from_secs(10));
        let now = Instant::now();
        (0..90).for_each(|_| h.record(MS(10), now));
        (0..10).for_each(|_| h.record(MS(200), now));
        tokio::time::advance(Duration::from_secs(10)).await;
        let d = h.delay(Instant::now()).unwrap();
        assert!(d >= MS(200) && d <= MS(200) * 102 / 100, "{d:?}");
        // 100th: the slowest.
        let h = LatencyHistogram::new(100.0, 1, Duration::from_secs(1));
        h.record(MS(1), Instant::now());
        h.record(Duration::from_micros(77), Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        // 1000 µs falls in [1000, 1007]: the delay is the top of that bucket, plus 1 µs.
        assert_eq!(h.delay(Instant::now()), Some(Duration::from_micros(1008)));
    }

    #[tokio::test(start_paused = true)]
    async fn too_few_points_or_too_old_means_no_delay() {
        let h = LatencyHistogram::new(50.0, 5, Duration::from_secs(1));
        (0..4).for_each(|_| h.record(MS(3), Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(h.delay(Instant::now()), None);
        (0..5).for_each(|_| h.record(MS(3), Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(h.delay(Instant::now()).is_some());
        // Nothing recorded in the period that just ended: forgotten.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(h.delay(Instant::now()), None);
        // Skipping two periods at once forgets too.
        (0..5).for_each(|_| h.record(MS(3), Instant::now()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(h.delay(Instant::now()), None);
    }
}
