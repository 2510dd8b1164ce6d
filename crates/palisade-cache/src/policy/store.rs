//! Storing (RFC 9111 §3): may a response be stored, in what form, for how long, how a
//! 304 updates it (§3.2, §4.3.4) and how variants share an entry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, DATE, EXPIRES};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use crate::directives::ResponseDirectives;
use crate::freshness;
use crate::key;
use crate::layer::Settings;
use crate::store::{Entry, StoredResponse};

use super::{RequestInfo, response_directives};

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
    body: &[u8],
    request_time: Instant,
    response_time: Instant,
) -> StoredResponse {
    // Two more slots: `Date` (when missing) and the `Age` placeholder.
    let mut headers = owned_headers(&parts.headers, 2);
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
        // An exact copy: the body may be a slice of a larger buffer (a connection's read
        // buffer, a `BytesMut` grown by doubling) that the store must not keep alive.
        body: Bytes::copy_from_slice(body),
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

/// A copy of `src` with room for `extra` more fields, whose values own their bytes: a
/// parsed header value may share the buffer the whole message was read into, which a
/// stored response must not keep alive (nor leave out of its weight).
fn owned_headers(src: &HeaderMap, extra: usize) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(src.len() + extra);
    for (name, value) in src {
        let mut owned = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        owned.set_sensitive(value.is_sensitive());
        out.append(name.clone(), owned);
    }
    out
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
        headers: owned_headers(&headers, 0),
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
