//! Legal but risky settings, reported as warnings by `check` (the file still loads).

use std::time::Duration;

use palisade_breaker::{BreakerConfig, SlidingWindow};
use palisade_ratelimit::{KeyConfig, RateLimitConfig};
use palisade_retry::{BudgetKind, RetryConfig};
use palisade_timeout::TimeoutConfig;

use crate::build::{Effective, peek};
use crate::error::{Problem, join};
use crate::matcher::Matcher;
use crate::set::PolicySet;

/// Every warning of `set`, in file order:
///
/// - a route with a `retry` section (retry is an outbound setting; a server route ignores it);
/// - retry without a budget (`budget = "none"`): retries can multiply an outage's load;
/// - a per-attempt timeout (`attempt_timeout`, `retry.per_attempt_timeout`) not shorter
///   than the total `timeout`: the total cuts the first attempt, no retry ever happens;
/// - a time-window breaker whose `minimum_calls` exceeds what the route's global rate limit
///   lets through in one window: it can never open;
/// - a rate limit keyed on a header the route's `match` does not require;
/// - idempotency without a `scope`: one caller's key replays another caller's response.
pub fn lint(set: &PolicySet) -> Vec<Problem> {
    let mut out = Vec::new();
    for r in &set.routes {
        server_route(&r.at, &r.matcher, &r.effective, &mut out);
    }
    for c in &set.clients {
        client(&c.at, &c.effective, &mut out);
    }
    out
}

fn server_route(at: &str, matcher: &Matcher, eff: &Effective, out: &mut Vec<Problem>) {
    let rl = eff
        .get("rate_limit")
        .and_then(|m| peek::<RateLimitConfig>(&m.value));
    if let Some(b) = eff
        .get("breaker")
        .and_then(|m| peek::<BreakerConfig>(&m.value))
        && let (SlidingWindow::Time(secs), Some(rl)) = (b.window, &rl)
        && matches!(rl.key, KeyConfig::Global)
    {
        let most = rl
            .quotas
            .iter()
            .map(|q| u128::from(q.limit) * u128::from(secs) * 1000 / q.window.as_millis().max(1))
            .min()
            .unwrap_or(u128::MAX);
        if u128::from(b.minimum_calls) > most {
            out.push(Problem::new(
                        join(at, "breaker.minimum_calls"),
                        format!(
                            "{} calls are needed in a {secs} s window but the rate limit lets at most {most} through: the breaker can never open",
                            b.minimum_calls
                        ),
                    ));
        }
    }
    if let Some(KeyConfig::Header { name }) = rl.as_ref().map(|r| &r.key)
        && !requires_header(matcher, name)
    {
        out.push(Problem::new(
                join(at, "rate_limit.key"),
                format!("keyed on header `{name}`, which the route's match does not require: requests without it are refused or share one bucket; add `header = \"{name}\"` to the match"),
            ));
    }
    if let Some(m) = eff.get("idempotency")
        && m.value.get("scope").is_none()
    {
        out.push(Problem::new(
                join(at, "idempotency"),
                "no `scope`: a key reused by another caller replays the first caller's response; scope keys per caller (or say scope = \"global\")",
            ));
    }
    if eff_has_retry(eff) {
        out.push(Problem::new(
            join(at, "retry"),
            "retry is an outbound setting: a server route ignores it (put it on a client)",
        ));
    }
}

fn eff_has_retry(eff: &Effective) -> bool {
    eff.get("retry").is_some_and(|m| {
        m.origins
            .values()
            .any(|o| *o == crate::merge::Origin::Route)
    })
}

fn client(at: &str, eff: &Effective, out: &mut Vec<Problem>) {
    let total = eff
        .get("timeout")
        .and_then(|m| peek::<TimeoutConfig>(&m.value))
        .map(|t| t.timeout);
    let retry = eff.get("retry").and_then(|m| peek::<RetryConfig>(&m.value));
    if let Some(r) = &retry
        && r.budget == BudgetKind::None
        && r.max_attempts > 1
    {
        out.push(Problem::new(
                join(at, "retry.budget"),
                "retry without a budget: during an outage every caller multiplies its load by max_attempts; use budget = \"tps\" or \"throttle\"",
            ));
    }
    let attempt = eff
        .get("attempt_timeout")
        .and_then(|m| peek::<TimeoutConfig>(&m.value))
        .map(|t| (t.timeout, "attempt_timeout.timeout"))
        .or_else(|| {
            retry
                .as_ref()
                .and_then(|r| r.per_attempt_timeout)
                .map(|d| (d, "retry.per_attempt_timeout"))
        });
    if let (Some(total), Some((each, field))) = (total, attempt)
        && each >= total
    {
        out.push(Problem::new(
                join(at, field),
                format!("a per-attempt timeout of {} is not shorter than the total timeout of {}: no retry can ever run", fmt(each), fmt(total)),
            ));
    }
}

fn fmt(d: Duration) -> String {
    format!("{d:?}")
}

/// Whether every request `m` matches carries header `name`.
fn requires_header(m: &Matcher, name: &str) -> bool {
    match m {
        Matcher::Header { name: n, .. } => n.as_str().eq_ignore_ascii_case(name),
        Matcher::All(ms) => ms.iter().any(|m| requires_header(m, name)),
        Matcher::Any(ms) => !ms.is_empty() && ms.iter().all(|m| requires_header(m, name)),
        _ => false,
    }
}
