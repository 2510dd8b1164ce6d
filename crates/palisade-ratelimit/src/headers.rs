//! Formatting of the IETF `RateLimit-Policy` / `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers-10) and the legacy `X-RateLimit-*` fields.
//!
//! Both IETF fields are Structured Field Lists: one Item per quota, the policy name as an
//! sf-string, members separated by `", "`.
//!
//! - `RateLimit-Policy`: `q` = the quota's limit, `w` = its window in whole seconds
//!   (omitted for sub-second or fractional windows), and `palisade-burst` when the burst
//!   differs from the limit. Computed once per quota set.
//! - `RateLimit`: `r` = units that could be spent right now; `t` = for a quota that
//!   refused the request, the seconds until it admits one more (equal to `Retry-After`,
//!   so Retry-After never points earlier than the violated policy's `t`); for any other
//!   quota, the seconds until it is full again (GCRA refills continuously, so this is the
//!   sliding equivalent of a window reset). Seconds are rounded up.
//! - Legacy `X-RateLimit-Limit/Remaining/Reset` describe the quota closest to exhaustion,
//!   with `Reset` in delta seconds.
//!
//! ```
//! use palisade_ratelimit::headers;
//! let mut s = String::new();
//! headers::write_policy_item(&mut s, "default", 100, Some(60), None);
//! assert_eq!(s, r#""default";q=100;w=60"#);
//! s.clear();
//! headers::write_limit_item(&mut s, "default", 0, 5);
//! assert_eq!(s, r#""default";r=0;t=5"#);
//! ```

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use palisade_core::retry_after::seconds_ceil;

use crate::gcra::RateLimitDecision;
use crate::quota::{MAX_QUOTAS, Quota, QuotaSet};

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// Legacy `X-RateLimit-Limit`.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// Legacy `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// Legacy `X-RateLimit-Reset` (delta seconds).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Writes `name` as an sf-string (`"` and `\` escaped). The name must be printable ASCII,
/// which [`Quota::new`] guarantees.
pub fn write_sf_string(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Writes one `RateLimit-Policy` Item: `"name";q=<quota>[;w=<window>][;palisade-burst=<b>]`.
pub fn write_policy_item(
    out: &mut String,
    name: &str,
    quota: u64,
    window_secs: Option<u64>,
    burst: Option<u64>,
) {
    write_sf_string(out, name);
    let _ = write!(out, ";q={quota}");
    if let Some(w) = window_secs {
        let _ = write!(out, ";w={w}");
    }
    if let Some(b) = burst {
        let _ = write!(out, ";palisade-burst={b}");
    }
}

/// Writes one `RateLimit` Item: `"name";r=<remaining>;t=<seconds>`.
pub fn write_limit_item(out: &mut String, name: &str, remaining: u64, reset_secs: u64) {
    write_sf_string(out, name);
    let _ = write!(out, ";r={remaining};t={reset_secs}");
}

/// The window in whole seconds, if it is a whole number of seconds (`w` has no
/// sub-second precision; other windows are not advertised).
fn window_secs(q: &Quota) -> Option<u64> {
    let w = q.window();
    (w.subsec_nanos() == 0 && w.as_secs() > 0).then_some(w.as_secs())
}

fn to_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("structured field output is visible ASCII")
}

/// The `RateLimit-Policy` value for a quota set.
pub(crate) fn policy_header(quotas: &[Quota]) -> HeaderValue {
    let mut s = String::with_capacity(32 * quotas.len());
    for (i, q) in quotas.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let burst = (q.burst_size() != q.limit()).then_some(u64::from(q.burst_size()));
        write_policy_item(
            &mut s,
            q.name(),
            u64::from(q.limit()),
            window_secs(q),
            burst,
        );
    }
    to_value(s)
}

/// The `t` of one quota: for a quota that refused the request, the wait until it admits
/// one more; otherwise the time until it is full again. Whole seconds, rounded up.
fn t_of(d: &RateLimitDecision, i: usize) -> u64 {
    let s = d.state(i);
    if s.wait > Duration::ZERO {
        seconds_ceil(s.wait)
    } else {
        seconds_ceil(s.reset)
    }
}

/// The `r` and `t` of each quota of a decision, in order: what a `RateLimit` value says.
type LimitNumbers = [u64; 2 * MAX_QUOTAS];

fn limit_numbers(n: usize, d: &RateLimitDecision) -> LimitNumbers {
    let mut out = [0; 2 * MAX_QUOTAS];
    for i in 0..n {
        out[2 * i] = d.state(i).remaining;
        out[2 * i + 1] = t_of(d, i);
    }
    out
}

/// The last `RateLimit` value built on a thread: its quota set, its numbers, the value.
struct LastLimit {
    set: u64,
    numbers: LimitNumbers,
    value: HeaderValue,
}

thread_local! {
    static LAST_LIMIT: RefCell<Option<LastLimit>> = const { RefCell::new(None) };
}

/// The `RateLimit` value for a decision over `set`. A key well under its quota gets the same
/// `r` and `t` on request after request, so the value this thread built last is reused
/// (a reference count) when its set and numbers match; otherwise it is formatted
/// ([`limit_header`]) and remembered.
pub(crate) fn limit_value(set: &QuotaSet, d: &RateLimitDecision) -> HeaderValue {
    let quotas = set.quotas();
    let numbers = limit_numbers(quotas.len(), d);
    LAST_LIMIT.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return format_limit(quotas, &numbers);
        };
        if let Some(l) = &*last
            && l.set == set.id()
            && l.numbers == numbers
        {
            return l.value.clone();
        }
        let value = format_limit(quotas, &numbers);
        *last = Some(LastLimit {
            set: set.id(),
            numbers,
            value: value.clone(),
        });
        value
    })
}

/// The `RateLimit` value for a decision over `quotas`, always formatted.
#[cfg(test)]
pub(crate) fn limit_header(quotas: &[Quota], d: &RateLimitDecision) -> HeaderValue {
    format_limit(quotas, &limit_numbers(quotas.len(), d))
}

/// Formats each quota's pre-built `"name";r=` and two integers without `core::fmt`, into a
/// buffer on the stack, then copies it into the value (its one allocation). Past 256 bytes
/// (many long-named quotas) the buffer spills to the heap.
fn format_limit(quotas: &[Quota], numbers: &LimitNumbers) -> HeaderValue {
    let mut buf = [0u8; 256];
    let mut len = 0;
    let mut spill = Vec::new();
    let mut push = |s: &[u8]| {
        if let Some(dst) = buf.get_mut(len..len + s.len())
            && spill.is_empty()
        {
            dst.copy_from_slice(s);
            len += s.len();
        } else {
            if spill.is_empty() {
                spill.extend_from_slice(&buf[..len]);
            }
            spill.extend_from_slice(s);
        }
    };
    let mut num = itoa::Buffer::new();
    for (i, q) in quotas.iter().enumerate() {
        if i > 0 {
            push(b", ");
        }
        push(q.limit_prefix().as_bytes());
        push(num.format(numbers[2 * i]).as_bytes());
        push(b";t=");
        push(num.format(numbers[2 * i + 1]).as_bytes());
    }
    let bytes = if spill.is_empty() {
        &buf[..len]
    } else {
        &spill
    };
    HeaderValue::from_bytes(bytes).expect("structured field output is visible ASCII")
}

/// The legacy `X-RateLimit-Limit/Remaining/Reset` values for the quota closest to
/// exhaustion (the fewest remaining units; a refusing quota first).
fn legacy_values(quotas: &[Quota], d: &RateLimitDecision) -> [u64; 3] {
    let i = (0..quotas.len())
        .min_by_key(|&i| (d.state(i).wait == Duration::ZERO, d.state(i).remaining))
        .unwrap_or(0);
    [
        u64::from(quotas[i].limit()),
        d.state(i).remaining,
        t_of(d, i),
    ]
}

/// Inserts legacy values into `out`.
fn insert_legacy([limit, remaining, reset]: [u64; 3], out: &mut HeaderMap) {
    out.insert(X_RATELIMIT_LIMIT, HeaderValue::from(limit));
    out.insert(X_RATELIMIT_REMAINING, HeaderValue::from(remaining));
    out.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
}

/// Adds the legacy `X-RateLimit-*` fields to `out`.
pub(crate) fn legacy_headers(quotas: &[Quota], d: &RateLimitDecision, out: &mut HeaderMap) {
    insert_legacy(legacy_values(quotas, d), out);
}

/// The fields added to a successful response, kept without a `HeaderMap` of their own
/// (the legacy ones as numbers, formatted when applied, to keep response futures small).
#[derive(Debug)]
pub(crate) struct ResponseFields {
    policy: HeaderValue,
    limit: HeaderValue,
    legacy: Option<[u64; 3]>,
}

impl ResponseFields {
    pub(crate) fn new(set: &QuotaSet, d: &RateLimitDecision, legacy: bool) -> Self {
        Self {
            policy: set.policy_header().clone(),
            limit: limit_value(set, d),
            legacy: legacy.then(|| legacy_values(set.quotas(), d)),
        }
    }

    pub(crate) fn apply(self, out: &mut HeaderMap) {
        out.insert(RATELIMIT_POLICY, self.policy);
        out.insert(RATELIMIT, self.limit);
        if let Some(legacy) = self.legacy {
            insert_legacy(legacy, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::QuotaState;
    use crate::quota::QuotaSet;

    fn item_policy(name: &str, q: u64, w: Option<u64>) -> String {
        let mut s = String::new();
        write_policy_item(&mut s, name, q, w, None);
        s
    }

    #[test]
    fn spec_vector_emit() {
        // SPECS §2 "emit": policy q=100,w=60; 40 consumed, 58 s left.
        assert_eq!(
            item_policy("default", 100, Some(60)),
            "\"default\";q=100;w=60"
        );
        let mut s = String::new();
        write_limit_item(&mut s, "default", 60, 58);
        assert_eq!(s, "\"default\";r=60;t=58");
        // "emit on rejection": RateLimit: "default";r=0;t=5
        s.clear();
        write_limit_item(&mut s, "default", 0, 5);
        assert_eq!(s, "\"default\";r=0;t=5");
    }

    #[test]
    fn spec_vector_policy_list() {
        // The parse vector's input, emitted: "burst";q=100;w=60,"daily";q=1000;w=86400
        let set = QuotaSet::new([
            Quota::per_minute("burst", 100).unwrap(),
            Quota::new("daily", 1000, Duration::from_secs(86_400)).unwrap(),
        ])
        .unwrap();
        assert_eq!(
            set.policy_header().as_bytes(),
            b"\"burst\";q=100;w=60, \"daily\";q=1000;w=86400"
        );
    }

    #[test]
    fn a_long_limit_value_spills_to_the_heap_intact() {
        // 4 quotas with 64-character names that all need escaping: > 256 bytes.
        let names: Vec<String> = (0..4).map(|i| format!("{i}{}", "\"".repeat(63))).collect();
        let quotas: Vec<Quota> = names
            .iter()
            .map(|n| Quota::per_second(n, 1).unwrap())
            .collect();
        let d = RateLimitDecision::for_test(true, Duration::ZERO, &[QuotaState::default(); 4]);
        let got = limit_header(&quotas, &d);
        let want: Vec<String> = names
            .iter()
            .map(|n| format!("\"{}\";r=0;t=0", n.replace('"', "\\\"")))
            .collect();
        assert!(got.len() > 256);
        assert_eq!(got.to_str().unwrap(), want.join(", "));
    }

    #[test]
    fn escapes_and_vendor_burst_and_subsecond_window() {
        assert_eq!(item_policy("a\"b\\c", 1, None), r#""a\"b\\c";q=1"#);
        let q = Quota::per_second("s", 10).unwrap().burst(3);
        assert_eq!(
            policy_header(&[q]).as_bytes(),
            b"\"s\";q=10;w=1;palisade-burst=3"
        );
        let d = RateLimitDecision::for_test(true, Duration::ZERO, &[QuotaState::default()]);
        assert_eq!(
            limit_header(&[Quota::per_second("a\"b\\c", 1).unwrap()], &d).as_bytes(),
            br#""a\"b\\c";r=0;t=0"#
        );
        let q = Quota::new("ms", 5, Duration::from_millis(1500)).unwrap();
        assert_eq!(policy_header(&[q]).as_bytes(), b"\"ms\";q=5");
    }

    #[test]
    fn limit_header_and_legacy_pick_closest_to_exhaustion() {
        let quotas = [
            Quota::per_second("sec", 10).unwrap(),
            Quota::per_hour("hour", 1000).unwrap(),
        ];
        let d = RateLimitDecision::for_test(
            false,
            Duration::from_millis(4200),
            &[
                QuotaState {
                    remaining: 0,
                    reset: Duration::from_millis(900),
                    wait: Duration::from_millis(4200),
                },
                QuotaState {
                    remaining: 990,
                    reset: Duration::from_secs(36),
                    wait: Duration::ZERO,
                },
            ],
        );
        assert_eq!(
            limit_header(&quotas, &d).as_bytes(),
            b"\"sec\";r=0;t=5, \"hour\";r=990;t=36"
        );
        let mut h = HeaderMap::new();
        legacy_headers(&quotas, &d, &mut h);
        assert_eq!(h[X_RATELIMIT_LIMIT], "10");
        assert_eq!(h[X_RATELIMIT_REMAINING], "0");
        assert_eq!(h[X_RATELIMIT_RESET], "5");
    }

    fn allowed(remaining: u64, reset_secs: u64) -> RateLimitDecision {
        RateLimitDecision::for_test(
            true,
            Duration::ZERO,
            &[QuotaState {
                remaining,
                reset: Duration::from_secs(reset_secs),
                wait: Duration::ZERO,
            }],
        )
    }

    /// The per-thread reuse of the last `RateLimit` value: same set and numbers give the
    /// same shared bytes; other numbers, or another set with the same numbers (other names),
    /// never get a stale value.
    #[test]
    fn limit_value_reuses_only_an_exact_match() {
        let a = QuotaSet::from(Quota::per_second("a", 10).unwrap());
        let b = QuotaSet::from(Quota::per_second("b", 10).unwrap());
        let first = limit_value(&a, &allowed(9, 1));
        let again = limit_value(&a, &allowed(9, 1));
        assert_eq!(first, "\"a\";r=9;t=1");
        assert_eq!(
            first.as_bytes().as_ptr(),
            again.as_bytes().as_ptr(),
            "reused, not formatted again"
        );
        assert_eq!(limit_value(&a, &allowed(8, 1)), "\"a\";r=8;t=1");
        assert_eq!(limit_value(&a, &allowed(8, 2)), "\"a\";r=8;t=2");
        assert_eq!(limit_value(&b, &allowed(8, 2)), "\"b\";r=8;t=2");
        // A clone of a set is the same set.
        assert_eq!(limit_value(&b.clone(), &allowed(8, 2)), "\"b\";r=8;t=2");
        assert_eq!(limit_value(&a, &allowed(8, 2)), "\"a\";r=8;t=2");
    }
}
