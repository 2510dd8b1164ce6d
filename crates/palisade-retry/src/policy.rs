//! What is retried, and after how long (`../shared/SPECS.md` §3.9, §5).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode};
use palisade_core::grpc::GrpcCode;
use palisade_core::rejection::find_rejection;
use palisade_core::{BoxError, retry_after};

/// The request header that makes a POST/PATCH safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// gRPC trailer/header with the server's retry delay (gRFC A6).
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Return this result.
    Done,
    /// Retry after the computed backoff.
    Retry,
    /// Retry after exactly this server-sent delay (`Retry-After`, pushback).
    RetryAfter(Duration),
}

/// Whether a request may be retried at all: idempotent methods (GET, HEAD, OPTIONS, PUT,
/// DELETE, TRACE), or any method with an `Idempotency-Key`, or POST/PATCH when opted in.
pub fn retry_safe(method: &Method, headers: &HeaderMap, unsafe_methods: bool) -> bool {
    unsafe_methods
        || matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        )
        || headers.contains_key(IDEMPOTENCY_KEY)
}

/// The default verdict for an HTTP/gRPC result.
///
/// - errors: transport errors and a per-attempt timeout ([`Elapsed`](palisade_core::Elapsed))
///   are retried; other Palisade refusals from inner layers (an open breaker, a full
///   bulkhead, a local rate limit) are not;
/// - gRPC (a `grpc-status` header): UNAVAILABLE is retried, honouring
///   `grpc-retry-pushback-ms` (negative or malformed: stop);
/// - HTTP 502, 503, 504 and 429 are retried; 503 and 429 honour `Retry-After`.
pub fn default_verdict<B>(result: Result<&http::Response<B>, &BoxError>) -> Verdict {
    match result {
        Err(e) => match find_rejection(&**e) {
            Some(r) if r.kind() != "timeout" => Verdict::Done,
            _ => Verdict::Retry,
        },
        Ok(res) => {
            let headers = res.headers();
            if let Some(code) = GrpcCode::from_headers(headers) {
                if code != GrpcCode::Unavailable {
                    return Verdict::Done;
                }
                return match headers.get(GRPC_RETRY_PUSHBACK_MS) {
                    None => Verdict::Retry,
                    Some(v) => match v.to_str().ok().and_then(|s| s.parse::<i64>().ok()) {
                        Some(ms) if ms >= 0 => {
                            Verdict::RetryAfter(Duration::from_millis(ms.unsigned_abs()))
                        }
                        _ => Verdict::Done,
                    },
                };
            }
            match res.status() {
                StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Verdict::Retry,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                    match retry_after::from_headers(headers, SystemTime::now()) {
                        Some(d) => Verdict::RetryAfter(d),
                        None => Verdict::Retry,
                    }
                }
                _ => Verdict::Done,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn res(status: u16, headers: &[(&'static str, &'static str)]) -> http::Response<()> {
        let mut r = http::Response::builder().status(status).body(()).unwrap();
        for (k, v) in headers {
            r.headers_mut().insert(*k, HeaderValue::from_static(v));
        }
        r
    }

    #[test]
    fn specs_section_5_vectors() {
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("\"k\""));
        // POST /x → 503 (no key) → no retry; PUT → retry; POST + key → retry.
        assert!(!retry_safe(&Method::POST, &none, false));
        assert!(retry_safe(&Method::PUT, &none, false));
        assert!(retry_safe(&Method::POST, &keyed, false));
        assert!(retry_safe(&Method::PATCH, &none, true));
        // GET → 404 → no retry.
        assert_eq!(default_verdict(Ok(&res(404, &[]))), Verdict::Done);
        assert_eq!(default_verdict(Ok(&res(502, &[]))), Verdict::Retry);
        assert_eq!(default_verdict(Ok(&res(500, &[]))), Verdict::Done);
        assert_eq!(
            default_verdict(Ok(&res(503, &[("retry-after", "2")]))),
            Verdict::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(default_verdict(Ok(&res(429, &[]))), Verdict::Retry);
    }

    #[test]
    fn grpc_pushback() {
        // SPECS §3: "2000" → +2000 ms; "-1" / "abc" / "" → stop; other statuses → stop.
        let g = |p: Option<&'static str>| {
            let mut h = vec![("grpc-status", "14")];
            if let Some(p) = p {
                h.push((GRPC_RETRY_PUSHBACK_MS, p));
            }
            default_verdict(Ok(&res(200, &h)))
        };
        assert_eq!(g(None), Verdict::Retry);
        assert_eq!(g(Some("2000")), Verdict::RetryAfter(Duration::from_secs(2)));
        for bad in ["-1", "abc", ""] {
            assert_eq!(g(Some(bad)), Verdict::Done, "{bad:?}");
        }
        assert_eq!(
            default_verdict(Ok(&res(200, &[("grpc-status", "3")]))),
            Verdict::Done
        );
    }

    #[test]
    fn errors() {
        let transport: BoxError = "connection reset".into();
        assert_eq!(default_verdict::<()>(Err(&transport)), Verdict::Retry);
        let timeout: BoxError = palisade_core::Elapsed::new(Duration::from_secs(1)).into();
        assert_eq!(default_verdict::<()>(Err(&timeout)), Verdict::Retry);
        let open: BoxError = palisade_core::CircuitOpen::new(None).into();
        assert_eq!(default_verdict::<()>(Err(&open)), Verdict::Done);
    }
}
