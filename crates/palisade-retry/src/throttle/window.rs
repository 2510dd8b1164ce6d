//! The sliding window of requests and accepts: `buckets` slots over `window`, each a
//! tagged atomic counter, so recording is one compare-and-swap and reading is one load per
//! slot — no lock, no allocation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palisade_core::clock::{Clock, nanos};

/// The low 32 bits of a slot: its count.
const COUNT: u64 = u32::MAX as u64;

/// Requests and accepts over the last `window`, in `buckets` slots of `window / buckets`.
///
/// Each slot is one `AtomicU64`: the bucket number it counts for (its *tag*, the low 32
/// bits of `time / bucket width`) in the high half and the count in the low half. A record
/// into a slot whose tag is older starts it over at 1 for the current bucket (one whose tag
/// is newer by at most a window, written by a racing record, is counted into); a read sums
/// the slots whose tag is one of the last `buckets` buckets. Requests and accepts have
/// separate slots, so there is no reset to race with. The window covers between
/// `window - window / buckets` and `window` of history.
///
/// Tags wrap after 2³² buckets (at the narrowest bucket, 1 s / 120, about 13 months); a
/// slot untouched for exactly a multiple of that would be counted once more.
pub(crate) struct Window {
    clock: Clock,
    bucket_nanos: u64,
    requests: Box<[AtomicU64]>,
    accepts: Box<[AtomicU64]>,
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (requests, accepts) = self.counts();
        f.debug_struct("Window")
            .field("buckets", &self.requests.len())
            .field("bucket", &Duration::from_nanos(self.bucket_nanos))
            .field("requests", &requests)
            .field("accepts", &accepts)
            .finish_non_exhaustive()
    }
}

impl Window {
    /// `buckets` (at least 1) slots over `window` (at least 1 ms per slot).
    pub(crate) fn new(window: Duration, buckets: u32) -> Self {
        let buckets = buckets.max(1);
        let bucket_nanos = (nanos(window) / u64::from(buckets)).max(1_000_000);
        let slots = || (0..buckets).map(|_| AtomicU64::new(0)).collect();
        Self {
            clock: Clock::new(),
            bucket_nanos,
            requests: slots(),
            accepts: slots(),
        }
    }

    /// The current bucket number.
    #[inline]
    pub(crate) fn bucket(&self) -> u64 {
        self.clock.now() / self.bucket_nanos
    }

    /// Counts one request in bucket `now`.
    #[inline]
    pub(crate) fn request(&self, now: u64) {
        add(&self.requests, now);
    }

    /// Counts one accept now.
    #[inline]
    pub(crate) fn accept(&self) {
        add(&self.accepts, self.bucket());
    }

    /// `(requests, accepts)` over the window ending in bucket `now`.
    #[inline]
    pub(crate) fn counts_at(&self, now: u64) -> (u64, u64) {
        (sum(&self.requests, now), sum(&self.accepts, now))
    }

    /// `(requests, accepts)` over the window ending now.
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.counts_at(self.bucket())
    }
}

#[inline]
fn add(slots: &[AtomicU64], bucket: u64) {
    let n = slots.len() as u64;
    let slot = &slots[(bucket % n) as usize];
    let tag = (bucket & COUNT) << 32;
    let mut current = slot.load(Ordering::Relaxed);
    loop {
        // A tag at most one window ahead of ours: a racing record that read the clock a
        // little later already moved the slot on; count in its bucket rather than wipe it.
        let ahead = ((current >> 32) as u32).wrapping_sub(bucket as u32);
        let next = if current & !COUNT == tag || (ahead > 0 && u64::from(ahead) <= n) {
            if current & COUNT == COUNT {
                return; // saturated
            }
            current + 1
        } else {
            tag | 1
        };
        match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

#[inline]
fn sum(slots: &[AtomicU64], bucket: u64) -> u64 {
    let now = bucket as u32;
    let n = slots.len() as u32;
    slots
        .iter()
        .map(|s| {
            let v = s.load(Ordering::Relaxed);
            // Age in buckets; a tag "from the future" (a racing later record) wraps to a
            // huge age and is not counted yet.
            let age = now.wrapping_sub((v >> 32) as u32);
            if age < n { v & COUNT } else { 0 }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_slide_out_of_the_window() {
        let w = Window::new(Duration::from_secs(10), 10);
        for _ in 0..5 {
            w.request(w.bucket());
        }
        w.accept();
        assert_eq!(w.counts(), (5, 1));
        tokio::time::advance(Duration::from_secs(5)).await;
        w.request(w.bucket());
        assert_eq!(w.counts(), (6, 1));
        // The first bucket leaves the window 10 s after it started.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(w.counts(), (1, 0));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(w.counts(), (0, 0));
        // A slot reused after a full turn starts over.
        w.request(w.bucket());
        assert_eq!(w.counts(), (1, 0));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(w.counts(), (0, 0));
    }

    #[test]
    fn a_saturated_slot_stays_saturated_and_tags_wrap() {
        let slots = [AtomicU64::new(((7 & COUNT) << 32) | COUNT)];
        add(&slots, 7);
        assert_eq!(sum(&slots, 7), COUNT);
        add(&slots, 8);
        assert_eq!(sum(&slots, 8), 1);
        // Bucket numbers past 2^32 keep working (tags are their low 32 bits).
        let big = (1_u64 << 32) + 3;
        add(&slots, big);
        assert_eq!(sum(&slots, big), 1);
        assert_eq!(sum(&slots, big + 1), 0);
    }

    #[test]
    fn a_late_record_does_not_wipe_a_newer_bucket() {
        // One slot: buckets 4 and 5 share it. A record that read the clock in bucket 4 but
        // lands after one in bucket 5 counts in 5 instead of resetting it.
        let slots = [AtomicU64::new(0)];
        add(&slots, 5);
        add(&slots, 4);
        assert_eq!(sum(&slots, 5), 2);
        // A slot far "ahead" (a tag wrapped around, untouched for 2^32 buckets) is stale.
        let slots = [AtomicU64::new(((9 & COUNT) << 32) | 7)];
        add(&slots, 2);
        assert_eq!(sum(&slots, 2), 1);
        let slots: [AtomicU64; 4] = Default::default();
        add(&slots, 10); // slot 2
        add(&slots, 6); // slot 2, one window behind: counted in bucket 10
        assert_eq!(sum(&slots, 10), 2);
        add(&slots, 14); // slot 2, a window later: starts over
        assert_eq!(sum(&slots, 14), 1);
    }
}
