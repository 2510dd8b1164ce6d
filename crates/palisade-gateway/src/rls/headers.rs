//! The `response_headers_to_add` of a decision, for Envoy to forward to the client:
//!
//! - `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`: the format of Envoy's
//!   `enable_x_ratelimit_headers: DRAFT_VERSION_03` (`10, 10;w=1;name="per-ip", 1000;w=3600`),
//!   for the limit closest to exhaustion (a refused one first, then the fewest remaining);
//!   reset in delta seconds, rounded up;
//! - `ratelimit-policy` and `ratelimit`: the IETF fields (draft-ietf-httpapi-ratelimit-headers),
//!   one item per applied limit, written by `palisade_ratelimit::headers`;
//! - `retry-after`, when the request is over a limit: the longest wait of the refusing limits.
//!
//! No header when no descriptor had a limit.

use std::fmt::Write as _;

use palisade_core::retry_after::seconds_ceil;
use palisade_ratelimit::headers::{write_limit_item, write_policy_item, write_sf_string};

use super::service::Applied;

/// The headers for the limits that applied; `over`: the overall code is `OVER_LIMIT`.
pub(crate) fn response_headers(applied: &[&Applied], over: bool) -> Vec<(&'static str, String)> {
    let Some(closest) = applied.iter().min_by(|a, b| {
        // `false` sorts first: a refusing limit is the closest.
        let refused = |x: &Applied| !x.over || x.shadow;
        (refused(a), a.remaining, std::cmp::Reverse(a.reset)).cmp(&(
            refused(b),
            b.remaining,
            std::cmp::Reverse(b.reset),
        ))
    }) else {
        return Vec::new();
    };
    let mut limit = closest.requests_per_unit.to_string();
    let mut policy = String::new();
    let mut state = String::new();
    for (i, a) in applied.iter().enumerate() {
        let w = a.unit.window().as_secs();
        let _ = write!(limit, ", {};w={w}", a.requests_per_unit);
        if !a.name.is_empty() {
            limit.push_str(";name=");
            write_sf_string(&mut limit, &a.name);
        }
        if i > 0 {
            policy.push_str(", ");
            state.push_str(", ");
        }
        write_policy_item(
            &mut policy,
            &a.name,
            u64::from(a.requests_per_unit),
            Some(w),
            None,
        );
        write_limit_item(
            &mut state,
            &a.name,
            u64::from(a.remaining),
            seconds_ceil(a.reset),
        );
    }
    let mut out = vec![
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", closest.remaining.to_string()),
        ("x-ratelimit-reset", seconds_ceil(closest.reset).to_string()),
        ("ratelimit-policy", policy),
        ("ratelimit", state),
    ];
    if over {
        let wait = applied
            .iter()
            .filter(|a| a.over && !a.shadow)
            .map(|a| seconds_ceil(a.reset))
            .max()
            .unwrap_or(1);
        out.push(("retry-after", wait.max(1).to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::config::Unit;
    use super::*;

    fn applied(
        name: &str,
        rpu: u32,
        unit: Unit,
        over: bool,
        remaining: u32,
        reset_ms: u64,
    ) -> Applied {
        Applied {
            name: name.into(),
            requests_per_unit: rpu,
            unit,
            shadow: false,
            over,
            remaining,
            reset: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn closest_limit_and_ietf_fields() {
        let a = applied("per-ip", 10, Unit::Second, false, 3, 700);
        let b = applied("hourly", 1000, Unit::Hour, false, 998, 7_200);
        let h = response_headers(&[&a, &b], false);
        assert_eq!(
            h,
            [
                (
                    "x-ratelimit-limit",
                    r#"10, 10;w=1;name="per-ip", 1000;w=3600;name="hourly""#.to_owned()
                ),
                ("x-ratelimit-remaining", "3".to_owned()),
                ("x-ratelimit-reset", "1".to_owned()),
                (
                    "ratelimit-policy",
                    r#""per-ip";q=10;w=1, "hourly";q=1000;w=3600"#.to_owned()
                ),
                (
                    "ratelimit",
                    r#""per-ip";r=3;t=1, "hourly";r=998;t=8"#.to_owned()
                ),
            ]
        );
        // A refused limit is the closest, whatever the others' remaining.
        let c = applied("login", 5, Unit::Minute, true, 0, 12_000);
        let mut shadow = applied("shadowed", 1, Unit::Second, true, 0, 500);
        shadow.shadow = true;
        let h = response_headers(&[&shadow, &a, &c], true);
        assert_eq!(h[1], ("x-ratelimit-remaining", "0".to_owned()));
        assert_eq!(h[2], ("x-ratelimit-reset", "12".to_owned()));
        assert!(h[0].1.starts_with("5, "), "{:?}", h[0]);
        assert_eq!(h[5], ("retry-after", "12".to_owned()));
        assert!(response_headers(&[], false).is_empty());
    }
}
