//! `Cache-Control` directives of requests and responses (RFC 9111 §5.2), parsed without
//! allocating.
//!
//! Rules applied (RFC 9111 and RFC 9110 §5.6):
//! - every `Cache-Control` line is read, as if the lines were joined with commas;
//! - directive names are case-insensitive; arguments may be a token or a quoted string
//!   (`max-age="60"` is accepted, as §5.2 asks recipients to accept both forms);
//! - a malformed directive (unterminated quote, junk after the argument) is skipped up to the
//!   next comma, the others are kept;
//! - a numeric argument (`delta-seconds`, §1.2.2) is digits only; a value above 2³¹ is read
//!   as 2³¹; anything else (`max-age=-1`, `max-age=1.5`, `max-age=` ) makes the directive
//!   [`Delta::Invalid`];
//! - a numeric directive given twice is [`Delta::Invalid`] (§4.2.1: "the directive's value is
//!   considered invalid"), and a response whose freshness is invalid is treated as stale;
//! - `no-cache` and `private` with a field-name list are treated as their unqualified forms
//!   (the conservative reading §5.2.2.4 and §5.2.2.7 allow).

use http::HeaderMap;
use http::header::{AsHeaderName, CACHE_CONTROL};

/// `delta-seconds` values above this are read as this (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// A directive with a `delta-seconds` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delta {
    /// The directive is not present.
    #[default]
    Absent,
    /// Present with a valid argument, in seconds (capped at [`DELTA_SECONDS_MAX`]).
    Seconds(u64),
    /// Present, but the argument is missing, not a number, or the directive is repeated.
    Invalid,
}

impl Delta {
    /// The seconds if present and valid.
    pub const fn seconds(self) -> Option<u64> {
        match self {
            Self::Seconds(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the directive is present (valid or not).
    pub const fn is_present(self) -> bool {
        !matches!(self, Self::Absent)
    }

    fn set(&mut self, arg: Option<&[u8]>) {
        *self = match self {
            Self::Absent => arg
                .and_then(parse_delta)
                .map_or(Self::Invalid, Self::Seconds),
            _ => Self::Invalid,
        };
    }
}

/// The request's `max-stale` directive (RFC 9111 §5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxStale {
    /// Not present (or present with an invalid argument, which is ignored).
    #[default]
    Absent,
    /// `max-stale` without an argument: a stale response of any staleness is accepted.
    Any,
    /// `max-stale=N`: accepted if stale by at most N seconds.
    Seconds(u64),
}

/// Directives of a response's `Cache-Control` (RFC 9111 §5.2.2, RFC 5861).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct ResponseDirectives {
    /// `max-age`.
    pub max_age: Delta,
    /// `s-maxage` (shared caches only).
    pub s_maxage: Delta,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (qualified or not): store, but validate before each use.
    pub no_cache: bool,
    /// `private` (qualified or not): a shared cache does not store the response.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate` (shared caches only).
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate=N` (RFC 5861 §3); an invalid argument is ignored.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (RFC 5861 §4); an invalid argument is ignored.
    pub stale_if_error: Option<u64>,
}

impl ResponseDirectives {
    /// Parses every `Cache-Control` line of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::from_field(headers, CACHE_CONTROL)
    }

    /// Parses every line of the field `name` (e.g. `CDN-Cache-Control`, RFC 9213, which
    /// uses the same directives).
    pub fn from_field(headers: &HeaderMap, name: impl AsHeaderName) -> Self {
        let mut d = Self::default();
        for value in headers.get_all(name) {
            parse_list(value.as_bytes(), &mut |name, arg| d.apply(name, arg));
        }
        d
    }

    /// Parses one field value.
    pub fn parse(value: &[u8]) -> Self {
        let mut d = Self::default();
        parse_list(value, &mut |name, arg| d.apply(name, arg));
        d
    }

    fn apply(&mut self, name: &[u8], arg: Option<&[u8]>) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("max-age") {
            self.max_age.set(arg);
        } else if is("s-maxage") {
            self.s_maxage.set(arg);
        } else if is("no-store") {
            self.no_store = true;
        } else if is("no-cache") {
            self.no_cache = true;
        } else if is("private") {
            self.private = true;
        } else if is("public") {
            self.public = true;
        } else if is("must-revalidate") {
            self.must_revalidate = true;
        } else if is("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if is("must-understand") {
            self.must_understand = true;
        } else if is("no-transform") {
            self.no_transform = true;
        } else if is("immutable") {
            self.immutable = true;
        } else if is("stale-while-revalidate") {
            self.stale_while_revalidate = arg.and_then(parse_delta);
        } else if is("stale-if-error") {
            self.stale_if_error = arg.and_then(parse_delta);
        }
    }

    /// Whether the response carries explicit freshness (`max-age`, `s-maxage`; `Expires`
    /// is a separate header) — present, valid or not.
    pub const fn has_explicit_max_age(&self) -> bool {
        self.max_age.is_present() || self.s_maxage.is_present()
    }

    /// Whether a stale copy must never be served without validation by a shared cache
    /// (`must-revalidate`, `proxy-revalidate`, or `s-maxage`, which implies it, §5.2.2.10).
    pub const fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_present()
    }
}

/// Directives of a request's `Cache-Control` (RFC 9111 §5.2.1, RFC 5861 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestDirectives {
    /// `max-age`: the client accepts a response at most this old.
    pub max_age: Delta,
    /// `max-stale`.
    pub max_stale: MaxStale,
    /// `min-fresh`: the response must stay fresh for at least this long.
    pub min_fresh: Delta,
    /// `no-cache`: validate before using a stored response.
    pub no_cache: bool,
    /// `no-store`: store nothing of this request or its response.
    pub no_store: bool,
    /// `only-if-cached`: answer from storage or with 504.
    pub only_if_cached: bool,
    /// `stale-if-error=N` in a request (RFC 5861 §4).
    pub stale_if_error: Option<u64>,
}

impl RequestDirectives {
    /// Parses every `Cache-Control` line of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        for value in headers.get_all(CACHE_CONTROL) {
            parse_list(value.as_bytes(), &mut |name, arg| d.apply(name, arg));
        }
        d
    }

    fn apply(&mut self, name: &[u8], arg: Option<&[u8]>) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("max-age") {
            self.max_age.set(arg);
        } else if is("max-stale") {
            self.max_stale = match arg {
                None => MaxStale::Any,
                Some(a) => parse_delta(a).map_or(MaxStale::Absent, MaxStale::Seconds),
            };
        } else if is("min-fresh") {
            self.min_fresh.set(arg);
        } else if is("no-cache") {
            self.no_cache = true;
        } else if is("no-store") {
            self.no_store = true;
        } else if is("only-if-cached") {
            self.only_if_cached = true;
        } else if is("stale-if-error") {
            self.stale_if_error = arg.and_then(parse_delta);
        }
    }

    /// Whether no directive is present (the common case; lets callers skip checks).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `delta-seconds = 1*DIGIT`, capped at 2³¹ (RFC 9111 §1.2.2).
pub(crate) fn parse_delta(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &b in arg {
        n = n * 10 + u64::from(b - b'0');
        if n > DELTA_SECONDS_MAX {
            return Some(DELTA_SECONDS_MAX);
        }
    }
    Some(n)
}

const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Calls `f(name, argument)` for each well-formed directive of a comma-separated list.
/// A quoted argument is passed without its quotes; one containing a backslash escape is
/// passed with the escapes in place (no directive we read needs them).
pub(crate) fn parse_list(input: &[u8], f: &mut dyn FnMut(&[u8], Option<&[u8]>)) {
    let mut i = 0;
    let n = input.len();
    while i < n {
        // Skip separators and whitespace.
        while i < n && (is_ows(input[i]) || input[i] == b',') {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && input[i] != b'=' && input[i] != b',' && !is_ows(input[i]) {
            i += 1;
        }
        let name = &input[start..i];
        let mut ok = !name.is_empty() && name.iter().all(|&b| is_tchar(b));
        let mut arg = None;
        while i < n && is_ows(input[i]) {
            i += 1;
        }
        if i < n && input[i] == b'=' {
            i += 1;
            if i < n && input[i] == b'"' {
                i += 1;
                let vstart = i;
                let mut closed = false;
                while i < n {
                    match input[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            closed = true;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                let vend = i.min(n);
                if closed {
                    arg = Some(&input[vstart..vend]);
                    i += 1;
                } else {
                    ok = false;
                }
            } else {
                let vstart = i;
                while i < n && input[i] != b',' && !is_ows(input[i]) {
                    i += 1;
                }
                arg = Some(&input[vstart..i]);
            }
        }
        while i < n && is_ows(input[i]) {
            i += 1;
        }
        if i < n && input[i] != b',' {
            // Junk after the directive: skip to the next comma outside quotes.
            ok = false;
            let mut quoted = false;
            while i < n && (quoted || input[i] != b',') {
                match input[i] {
                    b'"' => quoted = !quoted,
                    b'\\' if quoted => i += 1,
                    _ => {}
                }
                i += 1;
            }
        }
        if ok {
            f(name, arg);
        }
    }
}

/// `tchar` of RFC 9110 §5.6.2.
const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn res(lines: &[&str]) -> ResponseDirectives {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CACHE_CONTROL, HeaderValue::from_str(l).unwrap());
        }
        ResponseDirectives::from_headers(&h)
    }

    fn req(lines: &[&str]) -> RequestDirectives {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CACHE_CONTROL, HeaderValue::from_str(l).unwrap());
        }
        RequestDirectives::from_headers(&h)
    }

    #[test]
    fn response_directives_all_forms() {
        let d = res(&["public, MAX-AGE=60, s-maxage=\"30\", must-revalidate"]);
        assert_eq!(d.max_age, Delta::Seconds(60));
        assert_eq!(d.s_maxage, Delta::Seconds(30));
        assert!(d.public && d.must_revalidate && !d.no_store && !d.private);
        let d = res(&[
            "no-cache=\"set-cookie, x-a\", private=\"x\"",
            "proxy-revalidate,no-store",
        ]);
        assert!(d.no_cache && d.private && d.proxy_revalidate && d.no_store);
        let d = res(&["stale-while-revalidate=30, stale-if-error=600, immutable"]);
        assert_eq!(d.stale_while_revalidate, Some(30));
        assert_eq!(d.stale_if_error, Some(600));
        assert!(d.immutable);
    }

    #[test]
    fn multiple_lines_are_one_list_and_duplicates_invalidate() {
        assert_eq!(res(&["public", "max-age=10"]).max_age, Delta::Seconds(10));
        assert_eq!(res(&["max-age=10", "max-age=10"]).max_age, Delta::Invalid);
        assert_eq!(res(&["max-age=10, max-age=20"]).max_age, Delta::Invalid);
    }

    #[test]
    fn malformed_directives_are_skipped_or_invalid() {
        assert_eq!(res(&["max-age=-1"]).max_age, Delta::Invalid);
        assert_eq!(res(&["max-age=1.5"]).max_age, Delta::Invalid);
        assert_eq!(res(&["max-age="]).max_age, Delta::Invalid);
        assert_eq!(res(&["max-age"]).max_age, Delta::Invalid);
        assert_eq!(
            res(&["max-age=99999999999999999999999"]).max_age,
            Delta::Seconds(DELTA_SECONDS_MAX)
        );
        // Unterminated quote: that directive is dropped, the earlier ones are kept.
        let d = res(&["public, max-age=\"60"]);
        assert!(d.public);
        assert_eq!(d.max_age, Delta::Absent);
        // Junk after an argument drops that directive only.
        let d = res(&["max-age=60 junk, no-store"]);
        assert_eq!(d.max_age, Delta::Absent);
        assert!(d.no_store);
        // A comma inside a quoted string does not split.
        let d = res(&["private=\"a, max-age=5\", max-age=7"]);
        assert!(d.private);
        assert_eq!(d.max_age, Delta::Seconds(7));
        // Empty elements and odd whitespace.
        let d = res(&[" ,, public ,\tmax-age=5 ,"]);
        assert!(d.public);
        assert_eq!(d.max_age, Delta::Seconds(5));
        // Whitespace around `=` is not in the grammar: the directive is dropped.
        assert_eq!(res(&["max-age = 5"]).max_age, Delta::Absent);
    }

    #[test]
    fn request_directives() {
        let d = req(&[
            "max-age=0, max-stale, min-fresh=5",
            "no-cache, only-if-cached",
        ]);
        assert_eq!(d.max_age, Delta::Seconds(0));
        assert_eq!(d.max_stale, MaxStale::Any);
        assert_eq!(d.min_fresh, Delta::Seconds(5));
        assert!(d.no_cache && d.only_if_cached && !d.no_store);
        assert_eq!(req(&["max-stale=30"]).max_stale, MaxStale::Seconds(30));
        assert_eq!(req(&["max-stale=x"]).max_stale, MaxStale::Absent);
        assert!(req(&["no-store"]).no_store);
        assert!(req(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ResponseDirectives::parse(&input);
            let mut count = 0;
            parse_list(&input, &mut |name, _| { assert!(!name.is_empty()); count += 1; });
            prop_assert!(count <= input.len());
        }

        #[test]
        fn max_age_roundtrips(n in 0u64..=DELTA_SECONDS_MAX, quoted in any::<bool>(), pad in "[ \t]{0,2}") {
            let v = if quoted { format!("public,{pad}max-age=\"{n}\"{pad}") } else { format!("{pad}max-age={n}{pad},public") };
            let d = ResponseDirectives::parse(v.as_bytes());
            prop_assert_eq!(d.max_age, Delta::Seconds(n));
            prop_assert!(d.public);
        }

        #[test]
        fn delta_above_cap_is_capped(n in (DELTA_SECONDS_MAX + 1)..u64::MAX) {
            prop_assert_eq!(parse_delta(n.to_string().as_bytes()), Some(DELTA_SECONDS_MAX));
        }
    }
}
