//! Serving from storage: `Age` (RFC 9111 §5.1), the client's own conditional request
//! (RFC 9110 §13.2.2) and single byte ranges (RFC 9110 §14).

use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body::CacheBody;
use crate::freshness::header_date;
use crate::key;
use crate::layer::Settings;
use crate::store::StoredResponse;

use super::{Label, RequestFields, label_response};

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
    let fields = RequestFields::of(request_headers);
    serve_with(s, fields, method, request_headers, v, age, label)
}

/// [`serve`] with the request's fields already surveyed (the hit path has them).
pub(crate) fn serve_with<St, B>(
    s: &Settings<St>,
    fields: RequestFields<'_>,
    method: &Method,
    request_headers: &HeaderMap,
    v: &StoredResponse,
    age: Duration,
    label: Label,
) -> Response<CacheBody<B>> {
    let age = age_header(age.as_secs());
    let conditional = fields.if_none_match || fields.if_modified_since;
    let mut res = if v.status == StatusCode::OK && conditional && not_modified(request_headers, v) {
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
        if v.status == StatusCode::OK && fields.range {
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
