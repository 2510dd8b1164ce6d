//! The decisions of RFC 9111: may a response be stored (§3), may a stored one be reused
//! (§4), how is it served (§4, §5.1), how does a 304 update it (§3.2, §4.3.4).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use tokio::time::Instant;

use crate::body::CacheBody;
use crate::directives::{MaxStale, RequestDirectives, ResponseDirectives};
use crate::events::CacheEvent;
use crate::freshness::{self, header_date};
use crate::key;
use crate::layer::Settings;
use crate::store::{Entry, StoredResponse};

/// What the status header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Hit,
    Miss,
    Stale,
    Revalidated,
}

impl Label {
    const fn value(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Revalidated => "revalidated",
        }
    }
}

/// Result of looking a request up.
pub(crate) enum Lookup<B> {
    /// Answered from storage (or 504 for `only-if-cached`).
    Serve(Response<CacheBody<B>>),
    /// A stored response exists but must be validated first.
    Validate(Arc<StoredResponse>),
    /// Nothing usable stored.
    Miss,
    /// Served stale within `stale-while-revalidate`; the stored response is to be
    /// refreshed in the background (RFC 5861 §3).
    ServeAndRefresh(Response<CacheBody<B>>, Arc<StoredResponse>),
}

/// The request facts storing needs, kept while the request itself goes upstream.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) directives: RequestDirectives,
}

/// The directives this cache obeys for a response: the targeted field (RFC 9213) when
/// present, else `Cache-Control`.
pub(crate) fn response_directives<St>(s: &Settings<St>, headers: &HeaderMap) -> ResponseDirectives {
    if let Some(name) = &s.targeted_field
        && headers.contains_key(name)
    {
        return ResponseDirectives::from_field(headers, name);
    }
    ResponseDirectives::from_headers(headers)
}

pub(crate) fn is_get_or_head(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

/// Unsafe methods (RFC 9110 §9.2.1) invalidate (RFC 9111 §4.4).
pub(crate) fn is_unsafe(m: &Method) -> bool {
    !(is_get_or_head(m) || m == Method::OPTIONS || m == Method::TRACE)
}

/// Picks the most recent variant of `entry` matching the request's key and `Vary` values.
fn select(
    entry: &Entry,
    uri: &Uri,
    headers: &HeaderMap,
    key_headers: &[HeaderName],
) -> Option<Arc<StoredResponse>> {
    if !key::matches(&entry.key, uri, headers, key_headers) {
        return None;
    }
    entry
        .variants
        .iter()
        .rev()
        .find(|v| {
            v.vary
                .iter()
                .all(|(name, value)| key::vary_matches(headers, name, value.as_deref()))
        })
        .cloned()
}

/// RFC 9111 §4: may the stored response be reused for this request, as is, stale, or only
/// after validation?
pub(crate) fn lookup<St, B>(
    s: &Settings<St>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    entry: Option<&Entry>,
    now: Instant,
) -> Lookup<B> {
    let rd = RequestDirectives::from_headers(headers);
    let Some(v) = entry.and_then(|e| select(e, uri, headers, &s.key_headers)) else {
        if rd.only_if_cached {
            return only_if_cached_miss(s);
        }
        return Lookup::Miss;
    };
    let age = v.current_age(now);
    let fresh = v.lifetime > age;
    let must_validate = v.directives.no_cache
        || rd.no_cache
        || rd.max_age.seconds().is_some_and(|m| age.as_secs() > m)
        || rd
            .min_fresh
            .seconds()
            .is_some_and(|m| v.lifetime.saturating_sub(age) < Duration::from_secs(m));
    if !must_validate {
        if fresh {
            s.listeners
                .emit_named(|instance| CacheEvent::Hit { instance });
            return Lookup::Serve(serve(s, method, headers, &v, age, Label::Hit));
        }
        let staleness = age.saturating_sub(v.lifetime);
        let allowed = match rd.max_stale {
            MaxStale::Absent => false,
            MaxStale::Any => true,
            MaxStale::Seconds(n) => staleness <= Duration::from_secs(n),
        };
        if allowed && !v.directives.forbids_stale() {
            s.listeners
                .emit_named(|instance| CacheEvent::Stale { instance });
            return Lookup::Serve(serve(s, method, headers, &v, age, Label::Stale));
        }
        let swr = v
            .directives
            .stale_while_revalidate
            .is_some_and(|w| staleness <= Duration::from_secs(w));
        if swr && !v.directives.forbids_stale() && !rd.only_if_cached {
            s.listeners
                .emit_named(|instance| CacheEvent::Stale { instance });
            let res = serve(s, method, headers, &v, age, Label::Stale);
            return Lookup::ServeAndRefresh(res, v);
        }
    }
    if rd.only_if_cached {
        return only_if_cached_miss(s);
    }
    Lookup::Validate(v)
}

fn only_if_cached_miss<St, B>(s: &Settings<St>) -> Lookup<B> {
    s.listeners
        .emit_named(|instance| CacheEvent::OnlyIfCachedMiss { instance });
    let mut res = Response::new(CacheBody::empty());
    *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    Lookup::Serve(res)
}

/// Whether a stale response may answer an upstream failure (RFC 5861 §4): a
/// `stale-if-error` window from the request or the response covers its staleness, and
/// nothing forbids serving it stale.
pub(crate) fn stale_if_error(
    v: &StoredResponse,
    request: &RequestDirectives,
    now: Instant,
) -> bool {
    if v.directives.forbids_stale() || v.directives.no_cache {
        return false;
    }
    let Some(window) = request.stale_if_error.or(v.directives.stale_if_error) else {
        return false;
    };
    let staleness = v.current_age(now).saturating_sub(v.lifetime);
    staleness <= Duration::from_secs(window)
}

/// Whether the client's own conditional request (If-None-Match, else If-Modified-Since)
/// is satisfied by `v` (RFC 9110 §13.2.2).
fn not_modified(headers: &HeaderMap, v: &StoredResponse) -> bool {
    if headers.contains_key(IF_NONE_MATCH) {
        return key::if_none_match(headers, v.headers.get(ETAG));
    }
    if let Some(since) = header_date(headers, IF_MODIFIED_SINCE)
        && let Some(modified) =
            header_date(&v.headers, LAST_MODIFIED).or_else(|| header_date(&v.headers, DATE))
    {
        return modified <= since;
    }
    false
}

/// Builds the response served from storage: the stored one with `Age` (RFC 9111 §5.1), or
/// a 304 when the client's own conditions hold; the body left out for `HEAD`.
pub(crate) fn serve<St, B>(
    s: &Settings<St>,
    method: &Method,
    request_headers: &HeaderMap,
    v: &StoredResponse,
    age: Duration,
    label: Label,
) -> Response<CacheBody<B>> {
    let age = age_header(age.as_secs());
    let mut res = if v.status == StatusCode::OK && not_modified(request_headers, v) {
        // RFC 9110 §15.4.5: the fields a 200 would have carried that describe the cache
        // and validation, nothing about the content.
        let mut headers = HeaderMap::new();
        for name in [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY] {
            for value in v.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let mut res = Response::new(CacheBody::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        *res.headers_mut() = headers;
        res
    } else {
        let body = if method == Method::HEAD {
            CacheBody::empty()
        } else {
            CacheBody::full(v.body.clone())
        };
        let mut res = Response::new(body);
        *res.status_mut() = v.status;
        *res.version_mut() = v.version;
        *res.headers_mut() = v.headers.clone();
        if v.status == StatusCode::OK && request_headers.contains_key(http::header::RANGE) {
            apply_range(request_headers, v, &mut res);
        }
        res
    };
    res.headers_mut().insert(http::header::AGE, age);
    label_response(s, &mut res, label);
    res
}

/// RFC 9110 §14: a single `bytes` range of a stored complete response becomes a 206 (or a
/// 416 when unsatisfiable). Several ranges, other units, or an `If-Range` that does not
/// match (strong `ETag` or `Last-Modified`) leave the full 200, as §14.2 allows.
fn apply_range<B>(request: &HeaderMap, v: &StoredResponse, res: &mut Response<CacheBody<B>>) {
    use http::header::{CONTENT_LENGTH, CONTENT_RANGE, IF_RANGE, RANGE};
    if let Some(if_range) = request.get(IF_RANGE) {
        let b = if_range.as_bytes();
        let matches = if b.starts_with(b"\"") {
            v.headers.get(ETAG).is_some_and(|e| e == if_range)
        } else {
            v.headers
                .get(LAST_MODIFIED)
                .is_some_and(|lm| lm == if_range)
        };
        if !matches {
            return;
        }
    }
    let Some(spec) = request.get(RANGE).and_then(|r| r.to_str().ok()) else {
        return;
    };
    let Some(spec) = spec.trim().strip_prefix("bytes=") else {
        return;
    };
    if spec.contains(',') {
        return;
    }
    let len = v.body.len() as u64;
    let Some((first, last)) = spec.trim().split_once('-') else {
        return;
    };
    let range = match (first.trim(), last.trim()) {
        ("", "") => return,
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => None,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => return,
        },
        (a, b) => {
            let Ok(a) = a.parse::<u64>() else { return };
            let b = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(b) if b >= a => b.min(len.saturating_sub(1)),
                    _ => return,
                }
            };
            (a < len).then_some((a, b))
        }
    };
    let headers = res.headers_mut();
    match range {
        Some((a, b)) if len > 0 => {
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let headers = res.headers_mut();
            headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")).expect("digits"),
            );
            headers.insert(CONTENT_LENGTH, HeaderValue::from(b - a + 1));
            if !res.body().is_end_stream_hint() {
                *res.body_mut() = CacheBody::full(v.body.slice(a as usize..=b as usize));
            }
        }
        _ => {
            headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).expect("digits"),
            );
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            *res.body_mut() = CacheBody::empty();
        }
    }
}

/// `Age` values below this come from a static table (no allocation per response).
const AGE_TABLE: u64 = 10_000;

/// The `Age` header value for `secs`, without allocating for ages under 10,000 s.
fn age_header(secs: u64) -> HeaderValue {
    static TABLE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    if secs >= AGE_TABLE {
        return HeaderValue::from(secs);
    }
    // "0123456789101112…9999": numbers of 1, 2, 3 and 4 digits back to back.
    let table = TABLE.get_or_init(|| {
        let mut s = String::with_capacity(38_890);
        for i in 0..AGE_TABLE {
            s.push_str(&i.to_string());
        }
        Box::leak(s.into_boxed_str())
    });
    let n = secs as usize;
    let (start, len) = match n {
        0..10 => (n, 1),
        10..100 => (10 + (n - 10) * 2, 2),
        100..1000 => (190 + (n - 100) * 3, 3),
        _ => (2890 + (n - 1000) * 4, 4),
    };
    HeaderValue::from_maybe_shared(Bytes::from_static(&table.as_bytes()[start..start + len]))
        .expect("digits are a valid header value")
}

pub(crate) fn label_response<St, B>(s: &Settings<St>, res: &mut Response<B>, label: Label) {
    if let Some(name) = &s.status_header {
        res.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(label.value()));
    }
}

/// RFC 9111 §3: may this response be stored? On success, the names of its `Vary`.
pub(crate) fn storable(
    info: &RequestInfo,
    status: StatusCode,
    headers: &HeaderMap,
    d: &ResponseDirectives,
) -> Result<Vec<HeaderName>, &'static str> {
    if info.method != Method::GET {
        return Err("method");
    }
    if info.directives.no_store || d.no_store {
        return Err("no-store");
    }
    // Final statuses this cache understands; partial content and 304 are not stored.
    if !(200..600).contains(&status.as_u16())
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err("status");
    }
    if d.private {
        return Err("private");
    }
    // §3.5: a shared cache stores an answer to an authenticated request only if the
    // response explicitly allows it.
    if info.headers.contains_key(AUTHORIZATION)
        && !(d.public || d.s_maxage.is_present() || d.must_revalidate)
    {
        return Err("authorization");
    }
    let vary = key::vary_names(headers).map_err(|()| "vary-star")?;
    let explicit = d.has_explicit_max_age() || headers.contains_key(EXPIRES);
    if !(explicit || d.public || freshness::heuristically_cacheable(status.as_u16())) {
        return Err("no-freshness");
    }
    Ok(vary)
}

/// Computes the stored form of a response.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stored_response<St>(
    s: &Settings<St>,
    info: &RequestInfo,
    parts: &http::response::Parts,
    directives: ResponseDirectives,
    vary: &[HeaderName],
    body: Bytes,
    request_time: Instant,
    response_time: Instant,
) -> StoredResponse {
    let mut headers = parts.headers.clone();
    let received = s.clock.wall(response_time);
    if !headers.contains_key(DATE) {
        // RFC 9110 §6.6.1: a recipient with a clock adds the Date it received it at.
        headers.insert(
            DATE,
            HeaderValue::from_str(&httpdate::fmt_http_date(received))
                .expect("HTTP-date is a valid header value"),
        );
    }
    let date = freshness::date_value(&headers, received);
    let lifetime = freshness::freshness_lifetime(
        parts.status.as_u16(),
        &headers,
        &directives,
        date,
        s.heuristic,
    );
    let initial_age =
        freshness::corrected_initial_age(&headers, date, request_time, response_time, &s.clock);
    // A placeholder, replaced when served: setting `Age` on the served copy then does not
    // grow its header map (one allocation fewer per hit).
    headers.insert(http::header::AGE, HeaderValue::from_static("0"));
    StoredResponse {
        status: parts.status,
        version: parts.version,
        headers,
        body,
        vary: vary
            .iter()
            .map(|n| (n.clone(), key::vary_value(&info.headers, n)))
            .collect(),
        response_time,
        initial_age,
        lifetime,
        directives,
    }
}

/// How long an entry is kept: while a stale window could still use it, or — when it can
/// be validated — up to `max_ttl`.
pub(crate) fn ttl<St>(s: &Settings<St>, v: &StoredResponse) -> Duration {
    if v.has_validator() {
        return s.max_ttl;
    }
    let windows = v
        .directives
        .stale_if_error
        .unwrap_or(0)
        .max(v.directives.stale_while_revalidate.unwrap_or(0));
    (v.lifetime.saturating_sub(v.initial_age) + Duration::from_secs(windows))
        .clamp(Duration::from_secs(1), s.max_ttl)
}

/// Header fields a 304 never updates (RFC 9111 §3.2: fields about the message, not the
/// content; hop-by-hop fields).
fn keeps_stored(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "content-range"
            | "content-encoding"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
    )
}

/// RFC 9111 §3.2 and §4.3.4: the stored response updated by a 304.
pub(crate) fn merge_304<St>(
    s: &Settings<St>,
    v: &StoredResponse,
    not_modified: &HeaderMap,
    request_time: Instant,
    response_time: Instant,
) -> StoredResponse {
    let mut headers = v.headers.clone();
    let mut last: Option<&HeaderName> = None;
    for (name, value) in not_modified {
        if keeps_stored(name) {
            continue;
        }
        if last != Some(name) {
            headers.remove(name);
            last = Some(name);
        }
        headers.append(name.clone(), value.clone());
    }
    let directives = response_directives(s, &headers);
    let received = s.clock.wall(response_time);
    if !not_modified.contains_key(DATE) {
        headers.insert(
            DATE,
            HeaderValue::from_str(&httpdate::fmt_http_date(received))
                .expect("HTTP-date is a valid header value"),
        );
    }
    let date = freshness::date_value(&headers, received);
    let lifetime =
        freshness::freshness_lifetime(v.status.as_u16(), &headers, &directives, date, s.heuristic);
    let initial_age =
        freshness::corrected_initial_age(not_modified, date, request_time, response_time, &s.clock);
    StoredResponse {
        headers,
        response_time,
        initial_age,
        lifetime,
        directives,
        ..v.clone()
    }
}

/// The entry after storing `v`: replaces the variant with the same `Vary` values, keeps at
/// most `max_variants`.
pub(crate) fn with_variant<St>(
    s: &Settings<St>,
    current: Option<&Entry>,
    key_text: Box<str>,
    v: Arc<StoredResponse>,
) -> Entry {
    let mut variants: Vec<Arc<StoredResponse>> = match current {
        Some(e) if e.key == key_text => e
            .variants
            .iter()
            .filter(|old| old.vary != v.vary)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    variants.push(v);
    if variants.len() > s.max_variants {
        let excess = variants.len() - s.max_variants;
        variants.drain(..excess);
    }
    Entry {
        key: key_text,
        variants,
    }
}

#[cfg(test)]
mod tests {
    use super::age_header;

    #[test]
    fn age_table_matches_formatting() {
        for n in (0..10_100).chain([86_400, u64::from(u32::MAX)]) {
            assert_eq!(age_header(n).to_str().unwrap(), n.to_string(), "{n}");
        }
    }
}
