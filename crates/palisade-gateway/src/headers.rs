//! Header handling at the proxy hop: hop-by-hop fields (RFC 9110 §7.6.1), the forwarding
//! fields (`X-Forwarded-For`, RFC 7239 `Forwarded`, `X-Forwarded-Proto`) and `X-Request-Id`.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether `name` is a hop-by-hop field that a proxy must not forward (RFC 9110 §7.6.1:
/// `Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Removes the hop-by-hop fields, and every field the `Connection` header lists. Returns
/// whether the request asked for `TE: trailers` (which gRPC over HTTP/2 needs kept).
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) -> bool {
    let te_trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if headers.contains_key(header::CONNECTION) {
        // The listed names are collected first: removal needs `&mut`.
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in [
        &header::CONNECTION,
        &header::TE,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHORIZATION,
        &header::PROXY_AUTHENTICATE,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
    te_trailers
}

/// Appends this hop (the client's address `peer`, the listener's scheme `proto`) to
/// `X-Forwarded-For` and `Forwarded`, and sets `X-Forwarded-Proto`.
pub(crate) fn append_forwarded(headers: &mut HeaderMap, peer: IpAddr, proto: &'static str) {
    let mut line = String::with_capacity(64);
    append_line(headers, &X_FORWARDED_FOR, &mut line);
    let _ = write!(line, "{peer}");
    if let Ok(v) = HeaderValue::try_from(line.as_str()) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    line.clear();
    append_line(headers, &header::FORWARDED, &mut line);
    match peer {
        IpAddr::V4(ip) => {
            let _ = write!(line, "for={ip};proto={proto}");
        }
        IpAddr::V6(ip) => {
            let _ = write!(line, "for=\"[{ip}]\";proto={proto}");
        }
    }
    if let Ok(v) = HeaderValue::try_from(line.as_str()) {
        headers.insert(header::FORWARDED, v);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// The values already there, joined with `, `, followed by `, ` (nothing if absent).
fn append_line(headers: &HeaderMap, name: &HeaderName, line: &mut String) {
    for v in headers.get_all(name) {
        if let Ok(s) = v.to_str() {
            let s = s.trim();
            if !s.is_empty() {
                line.push_str(s);
                line.push_str(", ");
            }
        }
    }
}

/// The request's `X-Request-Id`, or a new random one (32 hex digits) inserted into it.
pub(crate) fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= 200
    {
        return v.clone();
    }
    let n: u128 = rand::random();
    let mut buf = [0u8; 32];
    let digits = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = digits[((n >> (4 * (31 - i))) & 0xf) as usize];
    }
    let v = HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"));
    headers.insert(&X_REQUEST_ID, v.clone());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_fields_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        assert!(remove_hop_by_hop(&mut h));
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarding_fields_are_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=203.0.113.9"),
        );
        append_forwarded(&mut h, "10.0.0.1".parse().unwrap(), "http");
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.1");
        assert_eq!(
            h[header::FORWARDED],
            "for=203.0.113.9, for=10.0.0.1;proto=http"
        );
        assert_eq!(h["x-forwarded-proto"], "http");
        let mut h = HeaderMap::new();
        append_forwarded(&mut h, "2001:db8::1".parse().unwrap(), "http");
        assert_eq!(h[header::FORWARDED], "for=\"[2001:db8::1]\";proto=http");
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let mut h = HeaderMap::new();
        let id = request_id(&mut h);
        assert_eq!(id.len(), 32);
        assert_eq!(h[&X_REQUEST_ID], id);
        assert_eq!(request_id(&mut h), id);
    }
}
