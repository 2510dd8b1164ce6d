//! Cache keys: the primary key (host, path and query, configured key headers) and the
//! secondary key of `Vary` (RFC 9111 §4.1), computed and compared without allocating.

use std::hash::{DefaultHasher, Hasher};

use http::{HeaderMap, HeaderName, HeaderValue, Uri, header::HOST};

/// Feeds the primary key's text, piece by piece, to `f`.
fn pieces(uri: &Uri, headers: &HeaderMap, key_headers: &[HeaderName], f: &mut dyn FnMut(&[u8])) {
    pieces_with_host(uri, || headers.get(HOST), headers, key_headers, f);
}

/// [`pieces`] with the request's first `Host` value given by `host` (asked only for an
/// origin-form target, which has no authority).
fn pieces_with_host<'a>(
    uri: &Uri,
    host: impl FnOnce() -> Option<&'a HeaderValue>,
    headers: &HeaderMap,
    key_headers: &[HeaderName],
    f: &mut dyn FnMut(&[u8]),
) {
    match uri.authority() {
        Some(a) => f(a.as_str().as_bytes()),
        None => {
            if let Some(h) = host() {
                f(h.as_bytes());
            }
        }
    }
    f(uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .as_bytes());
    for name in key_headers {
        f(b"\n");
        f(name.as_str().as_bytes());
        f(b":");
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                f(b",");
            }
            f(v.as_bytes());
        }
    }
}

/// The 64-bit primary key.
pub(crate) fn hash(uri: &Uri, headers: &HeaderMap, key_headers: &[HeaderName]) -> u64 {
    let mut h = DefaultHasher::new();
    pieces(uri, headers, key_headers, &mut |p| h.write(p));
    h.finish()
}

/// [`hash`] with the request's first `Host` value already found.
pub(crate) fn hash_with_host(
    uri: &Uri,
    host: Option<&HeaderValue>,
    headers: &HeaderMap,
    key_headers: &[HeaderName],
) -> u64 {
    let mut h = DefaultHasher::new();
    pieces_with_host(uri, || host, headers, key_headers, &mut |p| h.write(p));
    h.finish()
}

/// The primary key's full text (stored with the entry).
pub(crate) fn text(uri: &Uri, headers: &HeaderMap, key_headers: &[HeaderName]) -> Box<str> {
    let mut s = Vec::new();
    pieces(uri, headers, key_headers, &mut |p| s.extend_from_slice(p));
    String::from_utf8_lossy(&s).into()
}

/// Whether `stored` is the text of this request's key.
#[cfg(test)]
fn matches(stored: &str, uri: &Uri, headers: &HeaderMap, key_headers: &[HeaderName]) -> bool {
    matches_with_host(stored, uri, headers.get(HOST), headers, key_headers)
}

/// Whether `stored` is the text of this request's key, whose first `Host` value is `host`.
pub(crate) fn matches_with_host(
    stored: &str,
    uri: &Uri,
    host: Option<&HeaderValue>,
    headers: &HeaderMap,
    key_headers: &[HeaderName],
) -> bool {
    let mut rest = stored.as_bytes();
    let mut ok = true;
    pieces_with_host(uri, || host, headers, key_headers, &mut |p| {
        if ok && rest.starts_with(p) {
            rest = &rest[p.len()..];
        } else {
            ok = false;
        }
    });
    ok && rest.is_empty()
}

/// The comma-separated elements of every line of `name`, trimmed, empty ones dropped.
fn elements<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// The normalised value of a request header for `Vary`: its elements joined with `,`
/// (`None` when absent).
pub(crate) fn vary_value(headers: &HeaderMap, name: &HeaderName) -> Option<Box<str>> {
    if !headers.contains_key(name) {
        return None;
    }
    let mut s = Vec::new();
    for (i, e) in elements(headers, name).enumerate() {
        if i > 0 {
            s.push(b',');
        }
        s.extend_from_slice(e);
    }
    Some(String::from_utf8_lossy(&s).into())
}

/// Whether the request's `name` header normalises to `stored`.
pub(crate) fn vary_matches(headers: &HeaderMap, name: &HeaderName, stored: Option<&str>) -> bool {
    match stored {
        None => !headers.contains_key(name),
        Some(stored) => {
            if !headers.contains_key(name) {
                return false;
            }
            let mut want = stored
                .as_bytes()
                .split(|&b| b == b',')
                .filter(|e| !e.is_empty());
            let mut got = elements(headers, name);
            loop {
                match (want.next(), got.next()) {
                    (None, None) => return true,
                    (Some(a), Some(b)) if a == b => {}
                    _ => return false,
                }
            }
        }
    }
}

/// The field names of a response's `Vary`, or `Err(())` when it lists `*` or a name that
/// is not a valid field name (such a response never matches, RFC 9111 §4.1).
pub(crate) fn vary_names(headers: &HeaderMap) -> Result<Vec<HeaderName>, ()> {
    let mut names = Vec::new();
    for e in elements(headers, &http::header::VARY) {
        if e == b"*" {
            return Err(());
        }
        let name = HeaderName::from_bytes(e).map_err(|_| ())?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn opaque(t: &[u8]) -> Option<&[u8]> {
    let t = t.strip_prefix(b"W/").unwrap_or(t);
    (t.len() >= 2 && t[0] == b'"' && t[t.len() - 1] == b'"').then_some(t)
}

/// Weak comparison (RFC 9110 §8.8.3.2) of the entity tags of `If-None-Match` with `etag`;
/// `*` matches any.
pub(crate) fn if_none_match(headers: &HeaderMap, etag: Option<&http::HeaderValue>) -> bool {
    let Some(etag) = etag else {
        return elements(headers, &http::header::IF_NONE_MATCH).any(|e| e == b"*");
    };
    let Some(stored) = opaque(etag.as_bytes().trim_ascii()) else {
        return false;
    };
    elements(headers, &http::header::IF_NONE_MATCH)
        .any(|e| e == b"*" || opaque(e).is_some_and(|t| t == stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn key_text_hash_and_match_agree() {
        let uri: Uri = "/a?b=1".parse().unwrap();
        let hs = h(&[("host", "example.com"), ("x-tenant", "t1")]);
        let kh = [HeaderName::from_static("x-tenant")];
        let text = text(&uri, &hs, &kh);
        assert_eq!(&*text, "example.com/a?b=1\nx-tenant:t1");
        assert!(matches(&text, &uri, &hs, &kh));
        let other = h(&[("host", "example.com"), ("x-tenant", "t2")]);
        assert!(!matches(&text, &uri, &other, &kh));
        assert_ne!(hash(&uri, &hs, &kh), hash(&uri, &other, &kh));
        assert!(!matches(&text, &"/a?b=12".parse().unwrap(), &hs, &kh));
    }

    #[test]
    fn vary_normalisation() {
        let name = HeaderName::from_static("accept-encoding");
        let a = h(&[("accept-encoding", "gzip, br")]);
        let b = h(&[("accept-encoding", "gzip"), ("accept-encoding", " br ,")]);
        let stored = vary_value(&a, &name);
        assert_eq!(stored.as_deref(), Some("gzip,br"));
        assert!(vary_matches(&b, &name, stored.as_deref()));
        assert!(!vary_matches(
            &h(&[("accept-encoding", "br, gzip")]),
            &name,
            stored.as_deref()
        ));
        assert!(!vary_matches(&h(&[]), &name, stored.as_deref()));
        assert!(vary_matches(&h(&[]), &name, None));
        assert!(vary_names(&h(&[("vary", "Accept, *")])).is_err());
        assert_eq!(
            vary_names(&h(&[("vary", "Accept, accept"), ("vary", "X-A")]))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn if_none_match_weak_comparison() {
        let etag = HeaderValue::from_static("\"v1\"");
        assert!(if_none_match(
            &h(&[("if-none-match", "W/\"v1\"")]),
            Some(&etag)
        ));
        assert!(if_none_match(
            &h(&[("if-none-match", "\"v0\", \"v1\"")]),
            Some(&etag)
        ));
        assert!(if_none_match(&h(&[("if-none-match", "*")]), Some(&etag)));
        assert!(!if_none_match(
            &h(&[("if-none-match", "\"v2\"")]),
            Some(&etag)
        ));
        assert!(!if_none_match(&h(&[("if-none-match", "\"v2\"")]), None));
    }
}
