//! The scripts' replies, read into decisions: the script returns how far ahead of now each
//! quota's TAT is, and the client derives remaining units and waits from it.

use std::time::Duration;

use redis::Value;

use crate::gcra::{QuotaState, RateLimitDecision};
use crate::quota::{MAX_QUOTAS, Quota};

/// Reads the lease script's reply `{units taken, ahead of each quota (us)}`.
pub(super) fn parse_lease_reply(
    reply: &Value,
    quotas: &[Quota],
) -> Result<(u32, RateLimitDecision), String> {
    let n = quotas.len();
    let bad = || format!("unexpected lease script reply {reply:?}");
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    if items.len() != 1 + n || n > MAX_QUOTAS {
        return Err(bad());
    }
    let taken = u32::try_from(int(&items[0]).ok_or_else(bad)?.max(0)).map_err(|_| bad())?;
    let mut aheads = [0u64; MAX_QUOTAS];
    for (a, v) in aheads.iter_mut().zip(&items[1..]) {
        *a = int(v).ok_or_else(bad)?.max(0) as u64;
    }
    Ok((taken, decision_from(taken > 0, 0, &aheads[..n], quotas)))
}

/// A quota's emission interval and tolerance in microseconds (the script's unit).
pub(super) fn micros(q: &Quota) -> (u64, u64) {
    let em = (q.emission_ns() / 1000).max(1);
    (em, em.saturating_mul(u64::from(q.burst_size())))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// Reads the script's reply `{allowed + 2 * shadow mask, ahead of each quota (us)}`, or
/// for one quota the integer `ahead * 32 + (allowed + 2 * mask)`; the remaining units and
/// the waits follow from the quotas' intervals and tolerances, as in [`gcra`](crate::gcra).
pub(super) fn parse_reply(reply: &Value, quotas: &[Quota]) -> Result<RateLimitDecision, String> {
    parse_reply_hits(reply, quotas, 1)
}

/// [`parse_reply`] for a request of `hits` units.
pub(super) fn parse_reply_hits(
    reply: &Value,
    quotas: &[Quota],
    hits: u64,
) -> Result<RateLimitDecision, String> {
    let n = quotas.len();
    let bad = || format!("unexpected script reply {reply:?}");
    let mut aheads = [0u64; MAX_QUOTAS];
    let head = match reply {
        Value::Int(v) if n == 1 && *v >= 0 => {
            aheads[0] = (*v >> 5) as u64;
            *v & 31
        }
        Value::Array(items) if items.len() == 1 + n && n <= MAX_QUOTAS => {
            for (a, v) in aheads.iter_mut().zip(&items[1..]) {
                *a = int(v).ok_or_else(bad)?.max(0) as u64;
            }
            int(&items[0]).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    let allowed = head & 1 == 1;
    let mask = ((head >> 1) & 0xF) as u8;
    Ok(decision_from_hits(
        allowed,
        mask,
        &aheads[..n],
        quotas,
        hits,
    ))
}

/// Rebuilds a decision from how far ahead of now each quota's TAT is after the script.
///
/// Refused: nothing was committed, so quota `i`'s wait is `ahead + em − tol` (at least 0).
/// Admitted: every enforced quota was committed at `max(tat, now + wait) + em`, so the
/// wait is the largest `ahead − tol` of the enforced quotas (see `gcra::decide`); a shadow
/// quota that would have refused was not committed and keeps its own wait.
pub(super) fn decision_from(
    allowed: bool,
    mask: u8,
    aheads: &[u64],
    quotas: &[Quota],
) -> RateLimitDecision {
    decision_from_hits(allowed, mask, aheads, quotas, 1)
}

/// [`decision_from`] for a request of `hits` units (a refused one waits for all of them).
fn decision_from_hits(
    allowed: bool,
    mask: u8,
    aheads: &[u64],
    quotas: &[Quota],
    hits: u64,
) -> RateLimitDecision {
    let mut states = [QuotaState::default(); MAX_QUOTAS];
    let mut wait = 0u64;
    for (i, (q, &ahead)) in quotas.iter().zip(aheads).enumerate() {
        let (em, tol) = micros(q);
        let skipped = mask & (1 << i) != 0;
        let own_wait = if allowed && !skipped {
            0
        } else {
            (ahead + em.saturating_mul(hits)).saturating_sub(tol)
        };
        if !q.is_shadow() {
            let w = if allowed {
                ahead.saturating_sub(tol)
            } else {
                own_wait
            };
            wait = wait.max(w);
        }
        states[i] = QuotaState {
            remaining: tol.saturating_sub(ahead) / em,
            reset: us(ahead),
            wait: us(own_wait),
        };
    }
    RateLimitDecision::new(allowed, us(wait), &states[..quotas.len()]).with_would_limit(mask)
}

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(items: &[i64]) -> Value {
        Value::Array(items.iter().map(|&i| Value::Int(i)).collect())
    }

    #[test]
    fn reply_parsing() {
        // 100 per minute: em 600 ms, tol 60 s. Refused with the bucket empty.
        let q = [Quota::per_minute("m", 100).unwrap()];
        let d = parse_reply(&Value::Int(60_000_000 * 32), &q).unwrap();
        assert!(!d.is_allowed());
        assert_eq!(d.wait(), Duration::from_millis(600));
        assert_eq!(d.states()[0].reset, Duration::from_secs(60));
        assert_eq!(d.states()[0].remaining, 0);
        // Admitted, 3 units spent: 97 left, no wait.
        let d = parse_reply(&Value::Int(1_800_000 * 32 + 1), &q).unwrap();
        assert!(d.is_allowed());
        assert_eq!(d.wait(), Duration::ZERO);
        assert_eq!(d.states()[0].remaining, 97);
        assert!(parse_reply(&reply(&[1]), &q).is_err());
        assert!(parse_reply(&Value::Int(-1), &q).is_err());
        // Two quotas: an array, shadow bits from bit 1.
        let two = [
            Quota::per_minute("m", 100).unwrap(),
            Quota::per_second("s", 10).unwrap().shadow(true),
        ];
        let d = parse_reply(&reply(&[1 + 4, 600_000, 1_000_000]), &two).unwrap();
        assert!(d.is_allowed() && !d.would_limit_quota(0) && d.would_limit_quota(1));
        assert_eq!(d.states()[1].wait, Duration::from_millis(100));
        assert!(parse_reply(&Value::Int(1), &two).is_err());
    }

    /// The reply rebuilt client-side equals the in-memory decision, for random arrivals
    /// over three quotas, one of them in shadow, in reject and wait mode (intervals in
    /// whole microseconds, the script's unit).
    #[test]
    fn rebuilt_decisions_match_the_in_memory_ones() {
        let quotas = [
            Quota::per_second("a", 10).unwrap().burst(3),
            Quota::new("b", 5, Duration::from_secs(2))
                .unwrap()
                .shadow(true),
            Quota::per_second("c", 8).unwrap(),
        ];
        for max_wait in [None, Some(250_000_000u64)] {
            let mut tats = [0u64; MAX_QUOTAS];
            let mut now = 1_000_000_000u64;
            let mut seed = 7u64;
            for _ in 0..2_000 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                now += (seed >> 33) % 150 * 1_000_000;
                let d = crate::gcra::decide(&mut tats, &quotas, now, max_wait);
                let mut aheads = [0u64; MAX_QUOTAS];
                for (a, t) in aheads.iter_mut().zip(&tats) {
                    *a = t.saturating_sub(now) / 1000;
                }
                let mask = (0..quotas.len())
                    .filter(|&i| d.would_limit_quota(i))
                    .fold(0u8, |m, i| m | 1 << i);
                let r = decision_from(d.is_allowed(), mask, &aheads[..quotas.len()], &quotas);
                assert_eq!(r, d, "at {now}");
            }
        }
    }
}
