//! Freshness arithmetic of RFC 9111 §4.2: freshness lifetime, `Age`, `Expires`, `Date`.
//!
//! - **Lifetime** (§4.2.1), for a shared cache: `s-maxage`, else `max-age`, else
//!   `Expires` − `Date`, else (only when enabled) the heuristic of §4.2.2: 10 % of
//!   `Date` − `Last-Modified`, capped. An invalid or repeated `max-age`/`s-maxage`, several
//!   `Expires` lines, or an `Expires` that is not an HTTP-date (`0`, say) give a lifetime of
//!   zero: the response is stale (§4.2.1, §5.3). When `max-age` or `s-maxage` is present,
//!   `Expires` is ignored.
//! - **Age** (§4.2.3): `apparent_age = max(0, response_time − date_value)`,
//!   `corrected_age_value = age_value + (response_time − request_time)`,
//!   `corrected_initial_age = max(apparent_age, corrected_age_value)`,
//!   `current_age = corrected_initial_age + (now − response_time)`. An `Age` field that is a
//!   list uses its first member; one that is not a non-negative integer is ignored (§5.1).
//!   A missing or invalid `Date` counts as the time the response was received.
//!
//! Time comes from tokio's clock, so tests run on paused time; wall-clock values (`Date`,
//! `Expires`) are related to it through a [`Clock`].

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use tokio::time::Instant;

use crate::directives::{Delta, ResponseDirectives, parse_delta};

/// Wall-clock time anchored to tokio's clock: `wall(instant)` is the wall time at the anchor
/// plus the tokio time elapsed since. Under `tokio::time::pause()` the wall clock pauses too.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_origin: SystemTime,
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Anchors `SystemTime::now()` to tokio's `Instant::now()`.
    pub fn new() -> Self {
        Self::anchored(SystemTime::now())
    }

    /// Anchors the given wall time to tokio's `Instant::now()` (for tests: a whole second
    /// makes `Date` arithmetic exact).
    pub fn anchored(wall: SystemTime) -> Self {
        Self {
            wall_origin: wall,
            origin: Instant::now(),
        }
    }

    /// tokio's current instant.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// The wall time at `at`.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.origin) {
            Some(d) => self.wall_origin + d,
            None => self.wall_origin - self.origin.duration_since(at),
        }
    }

    /// The instant at wall time `wall` (the inverse of [`wall`](Self::wall)); `None` when
    /// it lies before what an `Instant` can hold (before the machine started).
    pub fn instant(&self, wall: SystemTime) -> Option<Instant> {
        match wall.duration_since(self.wall_origin) {
            Ok(d) => self.origin.checked_add(d),
            Err(e) => self.origin.checked_sub(e.duration()),
        }
    }
}

/// Heuristic freshness (RFC 9111 §4.2.2): a fraction of the time since `Last-Modified`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heuristic {
    /// Percent of `Date` − `Last-Modified` (RFC 9111 suggests 10).
    pub percent: u32,
    /// Upper bound of a heuristic lifetime.
    pub max: Duration,
}

impl Default for Heuristic {
    fn default() -> Self {
        Self {
            percent: 10,
            max: Duration::from_secs(24 * 3600),
        }
    }
}

/// Parses an HTTP-date header value.
pub(crate) fn header_date(
    headers: &HeaderMap,
    name: http::header::HeaderName,
) -> Option<SystemTime> {
    let mut it = headers.get_all(name).iter();
    let v = it.next()?;
    if it.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(v.to_str().ok()?).ok()
}

/// The `Age` value of §5.1: first list member, ignored (0) when invalid.
pub fn age_value(headers: &HeaderMap) -> u64 {
    let Some(v) = headers.get(AGE) else { return 0 };
    let bytes = v.as_bytes();
    let first = bytes.split(|&b| b == b',').next().unwrap_or_default();
    parse_delta(first.trim_ascii()).unwrap_or(0)
}

/// The `Date` value, or `received` when missing or invalid.
pub fn date_value(headers: &HeaderMap, received: SystemTime) -> SystemTime {
    header_date(headers, DATE).unwrap_or(received)
}

/// Whether RFC 9110 §15.1 lists `status` as heuristically cacheable.
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The freshness lifetime of a response for a shared cache (§4.2.1), given its `Date`.
pub fn freshness_lifetime(
    status: u16,
    headers: &HeaderMap,
    directives: &ResponseDirectives,
    date: SystemTime,
    heuristic: Option<Heuristic>,
) -> Duration {
    let delta = |d: Delta| Duration::from_secs(d.seconds().unwrap_or(0));
    if directives.s_maxage.is_present() {
        return delta(directives.s_maxage);
    }
    if directives.max_age.is_present() {
        return delta(directives.max_age);
    }
    if headers.contains_key(EXPIRES) {
        // Several lines, or a value that is not an HTTP-date ("0"): already expired.
        return header_date(headers, EXPIRES)
            .and_then(|e| e.duration_since(date).ok())
            .unwrap_or(Duration::ZERO);
    }
    if let Some(h) = heuristic
        && (heuristically_cacheable(status) || directives.public)
        && let Some(lm) = header_date(headers, LAST_MODIFIED)
        && let Ok(since) = date.duration_since(lm)
    {
        return (since * h.percent / 100).min(h.max);
    }
    Duration::ZERO
}

/// The corrected initial age of §4.2.3, in whole seconds as `Age` counts them.
pub fn corrected_initial_age(
    headers: &HeaderMap,
    date: SystemTime,
    request_time: Instant,
    response_time: Instant,
    clock: &Clock,
) -> Duration {
    let apparent = clock
        .wall(response_time)
        .duration_since(date)
        .unwrap_or(Duration::ZERO);
    let delay = response_time.saturating_duration_since(request_time);
    let corrected_age_value = Duration::from_secs(age_value(headers)) + delay;
    apparent.max(corrected_age_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(t(secs))
    }

    fn lifetime(pairs: &[(&'static str, &str)], heuristic: Option<Heuristic>) -> u64 {
        let h = headers(pairs);
        let d = ResponseDirectives::from_headers(&h);
        freshness_lifetime(200, &h, &d, date_value(&h, t(0)), heuristic).as_secs()
    }

    #[test]
    fn lifetime_precedence() {
        let (e, d) = (date(100), date(0));
        assert_eq!(
            lifetime(&[("cache-control", "max-age=10, s-maxage=20")], None),
            20
        );
        assert_eq!(
            lifetime(
                &[
                    ("cache-control", "max-age=10"),
                    ("expires", &e),
                    ("date", &d)
                ],
                None
            ),
            10
        );
        assert_eq!(lifetime(&[("expires", &e), ("date", &d)], None), 100);
        // Expires without Date: relative to the time received.
        assert_eq!(lifetime(&[("expires", &e)], None), 100);
    }

    #[test]
    fn invalid_freshness_is_stale() {
        let (e, d) = (date(100), date(0));
        // Expires invalid or in the past.
        assert_eq!(lifetime(&[("expires", "0"), ("date", &d)], None), 0);
        assert_eq!(
            lifetime(&[("expires", &date(0)), ("date", &date(50))], None),
            0
        );
        // Two Expires lines.
        assert_eq!(
            lifetime(&[("expires", &e), ("expires", &e), ("date", &d)], None),
            0
        );
        // An invalid max-age still hides Expires.
        assert_eq!(
            lifetime(
                &[
                    ("cache-control", "max-age=x"),
                    ("expires", &e),
                    ("date", &d)
                ],
                None
            ),
            0
        );
        assert_eq!(
            lifetime(&[("cache-control", "max-age=5, max-age=5")], None),
            0
        );
    }

    #[test]
    fn heuristic_off_by_default_and_ten_percent_when_on() {
        let lm = httpdate::fmt_http_date(t(0) - Duration::from_secs(1000));
        let pairs = [("last-modified", lm.as_str()), ("date", &date(0))];
        assert_eq!(lifetime(&pairs, None), 0);
        assert_eq!(lifetime(&pairs, Some(Heuristic::default())), 100);
        let capped = Heuristic {
            percent: 10,
            max: Duration::from_secs(30),
        };
        assert_eq!(lifetime(&pairs, Some(capped)), 30);
        // Explicit freshness wins over the heuristic.
        let pairs = [
            ("last-modified", lm.as_str()),
            ("date", &date(0)),
            ("cache-control", "max-age=7"),
        ];
        assert_eq!(lifetime(&pairs, Some(Heuristic::default())), 7);
    }

    #[test]
    fn age_header_parsing() {
        assert_eq!(age_value(&headers(&[("age", "30")])), 30);
        assert_eq!(age_value(&headers(&[("age", "30, 40")])), 30);
        assert_eq!(age_value(&headers(&[("age", "-5")])), 0);
        assert_eq!(age_value(&headers(&[("age", "abc")])), 0);
        assert_eq!(age_value(&headers(&[("age", "99999999999999")])), 1 << 31);
        assert_eq!(age_value(&headers(&[])), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn current_age_arithmetic() {
        let clock = Clock::anchored(t(0));
        let request_time = clock.now();
        tokio::time::advance(Duration::from_secs(2)).await; // 2 s response delay
        let response_time = clock.now();
        // Date 10 s before the response arrived, Age 3: apparent 10 > 3 + 2.
        let h = headers(&[
            (
                "date",
                &httpdate::fmt_http_date(t(2) - Duration::from_secs(10)),
            ),
            ("age", "3"),
        ]);
        let age = corrected_initial_age(
            &h,
            date_value(&h, t(2)),
            request_time,
            response_time,
            &clock,
        );
        assert_eq!(age, Duration::from_secs(10));
        // Age 20 beats an apparent age of 0 (Date in the future counts as 0).
        let h = headers(&[("date", &date(50)), ("age", "20")]);
        let age = corrected_initial_age(
            &h,
            date_value(&h, t(2)),
            request_time,
            response_time,
            &clock,
        );
        assert_eq!(age, Duration::from_secs(22));
        assert_eq!(clock.wall(response_time), t(2));
    }
}
