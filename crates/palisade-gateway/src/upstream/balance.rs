//! How a group picks an endpoint: round robin (weighted or not) over the eligible ones, or
//! power of two choices on requests in flight, optionally weighted by each endpoint's
//! peak-EWMA latency (Finagle's and linkerd's `p2c` + peak EWMA).

use std::sync::atomic::{AtomicU64, Ordering};

/// Time constant of the latency average: a sample's weight halves in about 0.7 × this, and
/// an endpoint left unused decays toward zero cost (so a once-slow endpoint is tried again).
pub(super) const TAU_NS: f64 = 2e9;

/// Peak-EWMA of one endpoint's response-head latency in nanoseconds, lock-free: a slower
/// sample is taken at once, a faster one is averaged in with a weight growing with the time
/// since the last sample; reading decays the value over time.
#[derive(Debug, Default)]
pub(crate) struct Ewma {
    /// The cost (`f64` bits), as of `stamp`.
    cost: AtomicU64,
    /// When `cost` was last updated, in nanoseconds since the group's epoch.
    stamp: AtomicU64,
}

impl Ewma {
    fn decayed(cost: f64, since_ns: u64) -> f64 {
        cost * (-(since_ns as f64) / TAU_NS).exp()
    }

    /// The cost at `now_ns` (nanoseconds since the group's epoch).
    pub(crate) fn cost(&self, now_ns: u64) -> f64 {
        let cost = f64::from_bits(self.cost.load(Ordering::Relaxed));
        Self::decayed(
            cost,
            now_ns.saturating_sub(self.stamp.load(Ordering::Relaxed)),
        )
    }

    /// Records a response-head latency measured at `now_ns`.
    pub(crate) fn observe(&self, rtt_ns: u64, now_ns: u64) {
        let rtt = rtt_ns as f64;
        let since = now_ns.saturating_sub(self.stamp.load(Ordering::Relaxed));
        let _ = self
            .cost
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let cost = f64::from_bits(bits);
                let next = if rtt > cost {
                    rtt
                } else {
                    let w = (-(since as f64) / TAU_NS).exp();
                    cost * w + rtt * (1.0 - w)
                };
                Some(next.to_bits())
            });
        self.stamp.store(now_ns, Ordering::Relaxed);
    }
}

/// Power of two choices among the set bits of `ok` (at least two): two distinct endpoints
/// at random, the one of lower `cost` wins.
pub(super) fn p2c(ok: u64, cost: impl Fn(usize) -> f64) -> usize {
    let n = ok.count_ones();
    let a = rand::random_range(0..n);
    let b = (a + rand::random_range(1..n)) % n;
    let (a, b) = (nth_bit(ok, a), nth_bit(ok, b));
    if cost(b) < cost(a) { b } else { a }
}

/// Weighted round robin over the endpoints in `ok`: turn `turn` of a cycle of the total
/// weight, each endpoint taking as many consecutive turns as its weight.
pub(super) fn weighted(ok: u64, w: &[u32], turn: u64) -> Option<usize> {
    let eligible = || (0..w.len()).filter(move |&i| ok & (1 << i) != 0);
    let total: u64 = eligible().map(|i| u64::from(w[i])).sum();
    if total == 0 {
        return None;
    }
    let mut k = turn % total;
    for i in eligible() {
        if k < u64::from(w[i]) {
            return Some(i);
        }
        k -= u64::from(w[i]);
    }
    None
}

/// The position of the `k`-th set bit of `mask` (`k < mask.count_ones()`).
pub(super) fn nth_bit(mut mask: u64, k: u32) -> usize {
    for _ in 0..k {
        mask &= mask - 1;
    }
    mask.trailing_zeros() as usize
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Ewma, nth_bit};

    #[test]
    fn ewma_jumps_to_peaks_and_decays() {
        let e = Ewma::default();
        assert!(
            e.cost(0) < f64::EPSILON,
            "an endpoint never measured is tried first"
        );
        let ms = |n: u64| Duration::from_millis(n).as_nanos() as u64;
        e.observe(ms(100), ms(1_000));
        assert!(
            (e.cost(ms(1_000)) - 100e6).abs() < 1.0,
            "a peak is taken at once"
        );
        // A faster sample moves the cost part of the way down.
        e.observe(ms(10), ms(1_500));
        let c = e.cost(ms(1_500));
        assert!(c < 100e6 && c > 10e6, "{c}");
        // Unused, the cost decays toward zero: after five time constants, under 1 %.
        assert!(e.cost(ms(1_500) + 5 * super::TAU_NS as u64) < c / 100.0);
    }

    #[test]
    fn nth_bit_walks_set_bits() {
        assert_eq!(nth_bit(0b1011_0000, 0), 4);
        assert_eq!(nth_bit(0b1011_0000, 1), 5);
        assert_eq!(nth_bit(0b1011_0000, 2), 7);
    }

    #[test]
    fn weighted_turns_follow_the_weights_of_eligible_endpoints() {
        let picks: Vec<usize> = (0..5)
            .filter_map(|t| super::weighted(0b11, &[4, 1], t))
            .collect();
        assert_eq!(picks, [0, 0, 0, 0, 1]);
        // The heavier endpoint out: every turn goes to the other.
        assert_eq!(super::weighted(0b10, &[4, 1], 0), Some(1));
        assert_eq!(super::weighted(0b01, &[0, 1], 0), None);
    }
}
