//! `Retry-After` (RFC 9110 §10.2.3): `HTTP-date / delay-seconds`.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};

/// Parses a `Retry-After` value relative to `now`.
///
/// `delay-seconds` (`1*DIGIT`) gives that many seconds; an HTTP-date (IMF-fixdate, RFC 850
/// or asctime) gives the time from `now` until it, zero if it has passed; more seconds than
/// fit in a `u64` give `Duration::MAX` (callers cap it). Anything else (`-1`, `1.5`, empty,
/// garbage) gives `None`: fall back to computed backoff. Never panics.
pub fn parse(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let s = value.to_str().ok()?.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // More seconds than a u64 holds is "practically never": the longest duration, so
        // that a caller's cap applies, rather than no hint at all.
        return Some(s.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads `Retry-After` from response headers, measuring an HTTP-date against the response's
/// own `Date` header when it has a valid one (so clock skew does not matter), else `now`.
pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?;
    let reference = headers
        .get(header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or(now);
    parse(value, reference)
}

/// Whole seconds, rounded up, as sent in `Retry-After`.
pub fn seconds_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The `Retry-After` header value for a wait (delay-seconds, rounded up).
pub fn to_header_value(d: Duration) -> HeaderValue {
    HeaderValue::from(seconds_ceil(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn specs_vectors() {
        let now = httpdate::parse_http_date("Fri, 31 Dec 1999 23:59:00 GMT").unwrap();
        assert_eq!(parse(&hv("120"), now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse(&hv("Fri, 31 Dec 1999 23:59:59 GMT"), now),
            Some(Duration::from_secs(59))
        );
        assert_eq!(
            parse(&hv("Thu, 30 Dec 1999 23:59:59 GMT"), now),
            Some(Duration::ZERO)
        );
        // obsolete forms must be accepted too
        assert_eq!(
            parse(&hv("Friday, 31-Dec-99 23:59:59 GMT"), now),
            Some(Duration::from_secs(59))
        );
        assert_eq!(
            parse(&hv("Fri Dec 31 23:59:59 1999"), now),
            Some(Duration::from_secs(59))
        );
        for bad in ["-1", "1.5", "", "garbage", "+5", "5s"] {
            assert_eq!(parse(&hv(bad), now), None, "{bad}");
        }
        // Valid delay-seconds beyond u64: the longest wait, for the caller to cap.
        assert_eq!(
            parse(&hv("99999999999999999999999"), now),
            Some(Duration::MAX)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_round_trips(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                                        secs in 0u64..u64::MAX, ms in 0u64..u64::MAX / 2) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let _ = parse(&v, now);
            }
            // What we write, we read back (rounded up to whole seconds).
            proptest::prop_assert_eq!(parse(&HeaderValue::from(secs), now), Some(Duration::from_secs(secs)));
            let d = Duration::from_millis(ms);
            let back = parse(&to_header_value(d), now).unwrap();
            proptest::prop_assert!(back.checked_sub(d).is_some_and(|x| x < Duration::from_secs(1)));
        }
    }

    #[test]
    fn date_header_is_the_reference() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, hv("Fri, 31 Dec 1999 23:59:59 GMT"));
        h.insert(header::DATE, hv("Fri, 31 Dec 1999 23:59:00 GMT"));
        assert_eq!(
            from_headers(&h, SystemTime::now()),
            Some(Duration::from_secs(59))
        );
    }

    #[test]
    fn rounds_up() {
        assert_eq!(to_header_value(Duration::from_millis(4001)), "5");
        assert_eq!(to_header_value(Duration::from_secs(4)), "4");
        assert_eq!(to_header_value(Duration::ZERO), "0");
    }
}
