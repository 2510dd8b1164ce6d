//! The generic cell rate algorithm over several quotas at once, and its decisions.
//!
//! State per key and quota is one number, the theoretical arrival time (TAT). For a quota
//! with emission interval `T` (window / limit) and tolerance `τ = burst · T`, a request
//! arriving at `now` conforms once `max(TAT, now) + T − τ ≤ now`. The wait for a set of
//! quotas is the largest of their waits; the request is admitted when that wait is zero
//! (or, in wait mode, within the allowed wait). Only then is every TAT advanced, so a
//! request refused by one quota consumes nothing from the others (check, then commit,
//! under one lock of the key's entry). The Redis script does exactly the same in Lua.
//!
//! A [shadow](crate::Quota::shadow) quota is checked but never refuses: the wait and the
//! admission come from the enforced quotas only. A shadow quota that would have refused
//! (its own wait is longer than the enforced one) is reported in
//! [`RateLimitDecision::would_limit`] and consumes nothing, as if it had refused the
//! request; otherwise it is committed with the others. Its counts therefore follow what
//! the limit would do if enforced.

use std::time::Duration;

use crate::quota::{MAX_QUOTAS, Quota};

/// The state of one quota after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaState {
    /// Units that could still be spent right now (the `r` of the `RateLimit` field).
    pub remaining: u64,
    /// Time until the quota is full again.
    pub reset: Duration,
    /// Time until this quota admits one more request (zero if it admits one now).
    pub wait: Duration,
}

/// The outcome of a rate-limit decision over a quota set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    allowed: bool,
    /// Bit `i`: shadow quota `i` would have refused this request.
    would_limit: u8,
    wait: Duration,
    len: u8,
    states: [QuotaState; MAX_QUOTAS],
}

impl RateLimitDecision {
    /// Whether the request was admitted (and its units consumed).
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }
    /// The wait before the request conforms to every quota: the `Retry-After` of a refusal,
    /// or in wait mode how long an admitted request must sleep first.
    pub fn wait(&self) -> Duration {
        self.wait
    }
    /// Whether a [shadow](crate::Quota::shadow) quota would have refused this request (it
    /// was decided by the enforced quotas alone).
    pub fn would_limit(&self) -> bool {
        self.would_limit != 0
    }
    /// Whether shadow quota `i` (in the order of the quota set) would have refused it.
    pub fn would_limit_quota(&self, i: usize) -> bool {
        i < MAX_QUOTAS && self.would_limit & (1 << i) != 0
    }
    /// The per-quota states, in the order of the quota set.
    pub fn states(&self) -> &[QuotaState] {
        &self.states[..usize::from(self.len)]
    }
    pub(crate) fn state(&self, i: usize) -> &QuotaState {
        &self.states[i]
    }

    #[cfg(any(feature = "redis", test))]
    pub(crate) fn new(allowed: bool, wait: Duration, states: &[QuotaState]) -> Self {
        let mut s = [QuotaState::default(); MAX_QUOTAS];
        s[..states.len()].copy_from_slice(states);
        Self {
            allowed,
            would_limit: 0,
            wait,
            len: states.len() as u8,
            states: s,
        }
    }

    /// The same decision with `extra` more units remaining in every quota (units this
    /// instance holds on lease).
    #[cfg(feature = "redis")]
    pub(crate) fn with_extra_remaining(mut self, extra: u64) -> Self {
        for s in &mut self.states[..usize::from(self.len)] {
            s.remaining = s.remaining.saturating_add(extra);
        }
        self
    }

    #[cfg(feature = "redis")]
    pub(crate) fn with_would_limit(mut self, mask: u8) -> Self {
        self.would_limit = mask;
        self
    }

    #[cfg(test)]
    pub(crate) fn for_test(allowed: bool, wait: Duration, states: &[QuotaState]) -> Self {
        Self::new(allowed, wait, states)
    }
}

/// Decides one request at time `now` (nanoseconds on the limiter's clock) against
/// `quotas` whose TATs are `tats`, committing the new TATs if admitted. `max_wait` is
/// `None` to refuse anything that does not conform now, or the longest acceptable wait.
#[inline]
pub(crate) fn decide(
    tats: &mut [u64; MAX_QUOTAS],
    quotas: &[Quota],
    now: u64,
    max_wait: Option<u64>,
) -> RateLimitDecision {
    let n = quotas.len();
    let mut waits = [0u64; MAX_QUOTAS];
    let mut wait = 0u64;
    for (i, q) in quotas.iter().enumerate() {
        let start = tats[i].max(now);
        // Saturating throughout: a TAT can never wrap around to "the bucket is full".
        let w = start
            .saturating_add(q.emission_ns())
            .saturating_sub(q.tolerance_ns().saturating_add(now));
        waits[i] = w;
        if !q.is_shadow() {
            wait = wait.max(w);
        }
    }
    let allowed = wait == 0 || max_wait.is_some_and(|m| wait <= m);
    let mut would_limit = 0u8;
    let mut states = [QuotaState::default(); MAX_QUOTAS];
    for (i, q) in quotas.iter().enumerate() {
        // A shadow quota whose own wait exceeds the enforced one would have refused.
        let shadow_refuses = q.is_shadow() && waits[i] > wait;
        if shadow_refuses {
            would_limit |= 1 << i;
        }
        if allowed && !shadow_refuses {
            let arrival = now.saturating_add(wait);
            tats[i] = tats[i].max(arrival).saturating_add(q.emission_ns());
        }
        let ahead = tats[i].saturating_sub(now);
        states[i] = QuotaState {
            remaining: q.tolerance_ns().saturating_sub(ahead) / q.emission_ns(),
            reset: Duration::from_nanos(ahead),
            wait: if allowed && !shadow_refuses {
                Duration::ZERO
            } else {
                Duration::from_nanos(waits[i])
            },
        };
    }
    // Built in place: copying the states into a second array costs a `memcpy` per call.
    RateLimitDecision {
        allowed,
        would_limit,
        wait: Duration::from_nanos(wait),
        len: n as u8,
        states,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn huge_burst_over_a_long_window_neither_panics_nor_resets() {
        // limit 1, window 31 days, burst 10,000: τ = 850 years overflowed the TAT (a
        // panic in debug after ~6,900 requests, a silently refilled bucket in release).
        // The burst is now capped at what refills in 31 days, here 1.
        let day = 86_400 * S;
        let q = [Quota::new("month", 1, crate::quota::MAX_WINDOW)
            .unwrap()
            .burst(10_000)];
        assert_eq!(q[0].burst_size(), 1);
        let mut tats = [0; MAX_QUOTAS];
        let now = 5 * S;
        let admitted = (0..10_000)
            .filter(|_| decide(&mut tats, &q, now, None).is_allowed())
            .count();
        assert_eq!(admitted, 1);
        let d = decide(&mut tats, &q, now, None);
        assert_eq!(d.wait(), Duration::from_nanos(31 * day));
        assert!(!decide(&mut tats, &q, now + 31 * day - 1, None).is_allowed());
        assert!(decide(&mut tats, &q, now + 31 * day, None).is_allowed());
        // The largest burst allowed over 31 days at 10 per window: 10.
        let q = Quota::new("m", 10, crate::quota::MAX_WINDOW).unwrap();
        assert_eq!(q.clone().burst(10_000).burst_size(), 10);
        assert_eq!(q.clone().try_burst(11).unwrap_err().field(), "burst");
        assert_eq!(q.try_burst(10).unwrap().burst_size(), 10);
        // TATs near the end of the clock (584 years of uptime) saturate, never panic.
        let q = [Quota::per_second("s", 1).unwrap()];
        let mut tats = [u64::MAX - 1; MAX_QUOTAS];
        let d = decide(&mut tats, &q, u64::MAX - 2, Some(u64::MAX));
        assert!(d.is_allowed());
        assert_eq!(tats[0], u64::MAX);
    }

    #[test]
    fn burst_then_rate() {
        let q = [Quota::per_second("s", 10).unwrap().burst(3)];
        let mut tats = [0; MAX_QUOTAS];
        let now = 5 * S;
        for left in [2, 1, 0] {
            let d = decide(&mut tats, &q, now, None);
            assert!(d.is_allowed());
            assert_eq!(d.states()[0].remaining, left);
        }
        let d = decide(&mut tats, &q, now, None);
        assert!(!d.is_allowed());
        assert_eq!(d.wait(), Duration::from_millis(100));
        assert_eq!(d.states()[0].wait, Duration::from_millis(100));
        assert_eq!(d.states()[0].reset, Duration::from_millis(300));
        // 100 ms later exactly one more.
        assert!(decide(&mut tats, &q, now + S / 10, None).is_allowed());
        assert!(!decide(&mut tats, &q, now + S / 10, None).is_allowed());
    }

    #[test]
    fn refusal_by_one_quota_consumes_nothing() {
        let q = [
            Quota::per_second("sec", 100).unwrap(),
            Quota::per_minute("min", 2).unwrap(),
        ];
        let mut tats = [0; MAX_QUOTAS];
        assert!(decide(&mut tats, &q, S, None).is_allowed());
        assert!(decide(&mut tats, &q, S, None).is_allowed());
        let before = tats;
        let d = decide(&mut tats, &q, S, None);
        assert!(!d.is_allowed());
        assert_eq!(tats, before);
        assert_eq!(d.states()[0].remaining, 98);
        assert_eq!(d.states()[0].wait, Duration::ZERO);
        assert_eq!(d.states()[1].wait, Duration::from_secs(30));
        assert_eq!(d.wait(), Duration::from_secs(30));
    }

    #[test]
    fn wait_mode_reserves_a_slot() {
        let q = [Quota::per_second("s", 10).unwrap().burst(1)];
        let mut tats = [0; MAX_QUOTAS];
        assert_eq!(decide(&mut tats, &q, S, Some(S)).wait(), Duration::ZERO);
        assert_eq!(
            decide(&mut tats, &q, S, Some(S)).wait(),
            Duration::from_millis(100)
        );
        assert_eq!(
            decide(&mut tats, &q, S, Some(S)).wait(),
            Duration::from_millis(200)
        );
        // Too long a wait: refused, nothing reserved.
        let d = decide(&mut tats, &q, S, Some(S / 10));
        assert!(!d.is_allowed());
        assert_eq!(d.wait(), Duration::from_millis(300));
        assert_eq!(
            decide(&mut tats, &q, S, Some(S)).wait(),
            Duration::from_millis(300)
        );
    }

    proptest! {
        // Over any arrival pattern, admits in [t0, t1] never exceed burst + rate · (t1 − t0),
        // and a fresh key always gets its full burst at once.
        #[test]
        fn never_more_than_burst_plus_rate(
            limit in 1u32..50, burst in 1u32..20, gaps in proptest::collection::vec(0u64..300_000_000, 1..300)
        ) {
            let q = [Quota::per_second("p", limit).unwrap().burst(burst)];
            let mut tats = [0; MAX_QUOTAS];
            let start = 10 * S;
            let mut now = start;
            let mut admitted = 0u64;
            for g in &gaps {
                now += g;
                if decide(&mut tats, &q, now, None).is_allowed() { admitted += 1; }
            }
            let bound = u64::from(burst) + (now - start) / q[0].emission_ns() + 1;
            prop_assert!(admitted <= bound, "admitted {admitted} > {bound}");
            let mut fresh = [0; MAX_QUOTAS];
            for _ in 0..burst { prop_assert!(decide(&mut fresh, &q, start, None).is_allowed()); }
            prop_assert!(!decide(&mut fresh, &q, start, None).is_allowed());
        }

        // With two quotas, admits respect both bounds, and a refused request changes no TAT.
        #[test]
        fn multi_quota_bounds_and_atomic_refusals(
            a in 1u32..20, b in 1u32..20, gaps in proptest::collection::vec(0u64..200_000_000, 1..200)
        ) {
            let q = [
                Quota::per_second("a", a).unwrap(),
                Quota::new("b", b, Duration::from_secs(3)).unwrap(),
            ];
            let mut tats = [0; MAX_QUOTAS];
            let start = 10 * S;
            let mut now = start;
            let mut admitted = 0u64;
            for g in &gaps {
                now += g;
                let before = tats;
                let d = decide(&mut tats, &q, now, None);
                if d.is_allowed() {
                    admitted += 1;
                } else {
                    prop_assert_eq!(before, tats);
                    prop_assert!(d.states().iter().any(|s| !s.wait.is_zero()));
                    prop_assert_eq!(d.wait(), d.states().iter().map(|s| s.wait).max().unwrap());
                }
            }
            for quota in &q {
                let bound = u64::from(quota.burst_size()) + (now - start) / quota.emission_ns() + 1;
                prop_assert!(admitted <= bound);
            }
        }
    }
}
