//! What is retried: the [`Predicate`] and its default.

use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use palisade_core::classify::{Classifier, Outcome};
use palisade_core::rejection::find_rejection;
use palisade_core::{BoxError, ErrorsAsFailures, GrpcCode, ResponseParts, retry_after};

use crate::events::RetryReason;

/// The gRPC pushback trailer/header (gRFC A6), declared in palisade-core.
pub use palisade_core::grpc::GRPC_RETRY_PUSHBACK_MS_HEADER as GRPC_RETRY_PUSHBACK_MS;
/// `grpc-retry-pushback-ms` parsing, in palisade-core.
pub use palisade_core::grpc::parse_pushback;
/// The `Idempotency-Key` request header that makes a POST/PATCH retryable, declared in
/// palisade-core.
pub use palisade_core::header::IDEMPOTENCY_KEY;

/// The verdict on one attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// A success: returned, and credited to the budget.
    Success,
    /// A retryable failure; `after` is a server-given delay that replaces the backoff.
    Retry {
        /// Why.
        reason: RetryReason,
        /// `Retry-After` / pushback delay, if the server sent one.
        after: Option<Duration>,
    },
    /// A failure the server asked not to retry (negative/malformed pushback): returned, and
    /// counted as a failure by the budget.
    DontRetry,
    /// Neither (e.g. 404, INVALID_ARGUMENT): returned as is.
    Return,
}

/// Classifies each attempt's result. Implemented by [`DefaultPredicate`] and
/// [`predicate_fn`] closures.
pub trait Predicate<Res>: Clone + Send + Sync + 'static {
    /// The verdict on one attempt.
    fn check(&self, result: Result<&Res, &BoxError>) -> Decision;

    /// Whether `response` says "another request with this `Idempotency-Key` is still in
    /// flight" (see [`is_idempotency_conflict`]). The hedging layer never returns such an
    /// answer to a hedged request while another copy is still outstanding: the conflict is
    /// with its own copy. The default says no; [`DefaultPredicate`] recognises the 409
    /// problem that Palisade's idempotency layer (and the IETF `Idempotency-Key` draft)
    /// sends.
    fn is_in_flight_conflict(&self, response: &Res) -> bool {
        let _ = response;
        // Already `false`: the "replace with false" mutant is this body (excluded in
        // mutants.toml).
        false
    }
}

/// Whether a response is the "request with this key still in flight" answer of an
/// `Idempotency-Key` server: status 409 with an RFC 9457 problem body
/// (`content-type: application/problem+json`), as Palisade's idempotency layer renders
/// `IdempotencyConflict` and as the IETF draft `draft-ietf-httpapi-idempotency-key-header`
/// (§2.6, "concurrent requests") prescribes. Only the head is read, never the body.
pub fn is_idempotency_conflict(status: StatusCode, headers: &http::HeaderMap) -> bool {
    status == StatusCode::CONFLICT
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case(palisade_core::response::PROBLEM_JSON)
            })
}

/// The default predicate, for any response with [`ResponseParts`]:
///
/// - any `Err` (connect refused/reset, per-attempt [`Elapsed`](palisade_core::Elapsed), …)
///   is retried (after the rejection's own `retry_after`, if it has one);
/// - a `grpc-status` header: 0 is a success, 14 UNAVAILABLE is retried (honouring
///   `grpc-retry-pushback-ms`: ≥ 0 waits exactly that, negative or malformed stops), any
///   other code is returned;
/// - HTTP 502 and 504 are retried; 429 and 503 too, after `Retry-After` (seconds or
///   HTTP-date) if present; 1xx–3xx are successes; everything else is returned.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPredicate;

/// An `Err` is retried, after the rejection's own `retry_after` (an inner breaker's
/// remaining open time, a rate limit's `Retry-After`) if it is one.
fn retry_error(err: &BoxError) -> Decision {
    let after = find_rejection(&**err).and_then(palisade_core::Rejection::retry_after);
    Decision::Retry {
        reason: RetryReason::Error,
        after,
    }
}

impl<Res: ResponseParts> Predicate<Res> for DefaultPredicate {
    fn check(&self, result: Result<&Res, &BoxError>) -> Decision {
        let res = match result {
            Ok(res) => res,
            Err(err) => return retry_error(err),
        };
        let headers = res.headers();
        if let Some(code) = GrpcCode::from_headers(headers) {
            return match code {
                GrpcCode::Ok => Decision::Success,
                GrpcCode::Unavailable => match headers.get(&GRPC_RETRY_PUSHBACK_MS) {
                    None => Decision::Retry {
                        reason: RetryReason::Grpc(code),
                        after: None,
                    },
                    Some(v) => match parse_pushback(v.as_bytes()) {
                        Some(ms) => Decision::Retry {
                            reason: RetryReason::Grpc(code),
                            after: Some(Duration::from_millis(ms)),
                        },
                        None => Decision::DontRetry,
                    },
                },
                _ => Decision::Return,
            };
        }
        let status = res.status();
        match status {
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Decision::Retry {
                reason: RetryReason::Status(status),
                after: None,
            },
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => Decision::Retry {
                reason: RetryReason::Status(status),
                after: retry_after::from_headers(headers, SystemTime::now()),
            },
            s if s.as_u16() < 400 => Decision::Success,
            _ => Decision::Return,
        }
    }

    fn is_in_flight_conflict(&self, response: &Res) -> bool {
        is_idempotency_conflict(response.status(), response.headers())
    }
}

/// The default predicate of [`RetryLayer::any_request`](crate::RetryLayer::any_request), for
/// any response type: every `Err` is retried (after the rejection's own `retry_after`, if
/// the error is a Palisade rejection that has one), every `Ok` is a success.
impl<Res> Predicate<Res> for ErrorsAsFailures {
    #[inline]
    fn check(&self, result: Result<&Res, &BoxError>) -> Decision {
        match result {
            Ok(_) => Decision::Success,
            Err(err) => retry_error(err),
        }
    }
}

/// A [`Predicate`] from a [`Classifier`] over `Result<&Res, &BoxError>`; see
/// [`RetryLayer::classifier`](crate::RetryLayer::classifier).
///
/// [`Outcome::Failure`] is retried ([`RetryReason::Error`] for an `Err`, after the
/// rejection's own `retry_after` if it has one; [`RetryReason::Response`] for an `Ok`),
/// [`Outcome::Success`] is credited to the budget, [`Outcome::Ignored`] is returned as is.
#[derive(Debug, Clone, Copy)]
pub struct FromClassifier<C>(C);

impl<C> FromClassifier<C> {
    /// Wraps `classifier`.
    pub const fn new(classifier: C) -> Self {
        Self(classifier)
    }
}

impl<Res, C> Predicate<Res> for FromClassifier<C>
where
    C: Classifier<Res, BoxError>,
{
    fn check(&self, result: Result<&Res, &BoxError>) -> Decision {
        match (self.0.classify(result), result) {
            (Outcome::Success, _) => Decision::Success,
            (Outcome::Ignored, _) => Decision::Return,
            (Outcome::Failure, Err(err)) => retry_error(err),
            (Outcome::Failure, Ok(_)) => Decision::Retry {
                reason: RetryReason::Response,
                after: None,
            },
        }
    }
}

/// A predicate from a closure.
#[derive(Debug, Clone, Copy)]
pub struct PredicateFn<F>(F);

/// Wraps `f(Result<&Res, &BoxError>) -> Decision` as a [`Predicate`].
pub fn predicate_fn<Res, F>(f: F) -> PredicateFn<F>
where
    F: Fn(Result<&Res, &BoxError>) -> Decision + Clone + Send + Sync + 'static,
{
    PredicateFn(f)
}

impl<Res, F> Predicate<Res> for PredicateFn<F>
where
    F: Fn(Result<&Res, &BoxError>) -> Decision + Clone + Send + Sync + 'static,
{
    fn check(&self, result: Result<&Res, &BoxError>) -> Decision {
        (self.0)(result)
    }
}

/// RFC 9110 §9.2.1 safe methods: GET, HEAD, OPTIONS, TRACE (the only ones hedged by
/// default: a hedge sends a second copy while the first is still running).
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// RFC 9110 §9.2.2 idempotent methods: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> http::Response<()> {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn check(r: &http::Response<()>) -> Decision {
        DefaultPredicate.check(Ok(r))
    }

    #[test]
    fn statuses() {
        let retry = |s: u16, after| Decision::Retry {
            reason: RetryReason::Status(StatusCode::from_u16(s).unwrap()),
            after,
        };
        assert_eq!(check(&resp(200, &[])), Decision::Success);
        assert_eq!(check(&resp(404, &[])), Decision::Return);
        assert_eq!(check(&resp(500, &[])), Decision::Return);
        assert_eq!(check(&resp(502, &[])), retry(502, None));
        assert_eq!(check(&resp(504, &[])), retry(504, None));
        assert_eq!(check(&resp(503, &[])), retry(503, None));
        assert_eq!(
            check(&resp(429, &[("retry-after", "3")])),
            retry(429, Some(Duration::from_secs(3)))
        );
        // HTTP-date, measured against the response's own Date header.
        assert_eq!(
            check(&resp(
                503,
                &[
                    ("date", "Wed, 25 Nov 2026 08:00:00 GMT"),
                    ("retry-after", "Wed, 25 Nov 2026 08:00:07 GMT")
                ]
            )),
            retry(503, Some(Duration::from_secs(7)))
        );
        // Garbage Retry-After: plain backoff.
        assert_eq!(
            check(&resp(503, &[("retry-after", "soon")])),
            retry(503, None)
        );
    }

    #[test]
    fn grpc_and_pushback() {
        let unavailable = |after| Decision::Retry {
            reason: RetryReason::Grpc(GrpcCode::Unavailable),
            after,
        };
        assert_eq!(
            check(&resp(200, &[("grpc-status", "0")])),
            Decision::Success
        );
        assert_eq!(check(&resp(200, &[("grpc-status", "3")])), Decision::Return);
        assert_eq!(
            check(&resp(200, &[("grpc-status", "14")])),
            unavailable(None)
        );
        assert_eq!(
            check(&resp(
                200,
                &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "2000")]
            )),
            unavailable(Some(Duration::from_secs(2)))
        );
        for bad in ["-1", "abc", "", "007", "99999999999"] {
            assert_eq!(
                check(&resp(
                    200,
                    &[("grpc-status", "14"), ("grpc-retry-pushback-ms", bad)]
                )),
                Decision::DontRetry,
                "{bad:?}"
            );
        }
        assert_eq!(parse_pushback(b"0"), Some(0));
    }

    #[test]
    fn errors_are_retried() {
        let e: BoxError = palisade_core::Elapsed::new(Duration::from_secs(1)).into();
        assert_eq!(
            Predicate::<http::Response<()>>::check(&DefaultPredicate, Err(&e)),
            Decision::Retry {
                reason: RetryReason::Error,
                after: None
            }
        );
        let e: BoxError = palisade_core::CircuitOpen::new(Some(Duration::from_secs(2))).into();
        assert_eq!(
            Predicate::<http::Response<()>>::check(&DefaultPredicate, Err(&e)),
            Decision::Retry {
                reason: RetryReason::Error,
                after: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn conflict_recognition() {
        let conflict = resp(409, &[("content-type", "application/problem+json")]);
        assert!(Predicate::<http::Response<()>>::is_in_flight_conflict(
            &DefaultPredicate,
            &conflict
        ));
        let with_charset = resp(
            409,
            &[("content-type", "Application/Problem+JSON; charset=utf-8")],
        );
        assert!(is_idempotency_conflict(
            with_charset.status(),
            with_charset.headers()
        ));
        for other in [
            resp(409, &[]),
            resp(409, &[("content-type", "application/json")]),
            resp(422, &[("content-type", "application/problem+json")]),
        ] {
            assert!(!is_idempotency_conflict(other.status(), other.headers()));
        }
        // A predicate of your own does not recognise it unless it says so.
        let p = predicate_fn(|_r: Result<&http::Response<()>, &BoxError>| Decision::Return);
        assert!(!p.is_in_flight_conflict(&conflict));
    }

    #[test]
    fn safe_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(is_safe(&m.parse().unwrap()), "{m}");
        }
        for m in ["PUT", "DELETE", "POST", "PATCH", "CONNECT"] {
            assert!(!is_safe(&m.parse().unwrap()), "{m}");
        }
    }

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(&m.parse().unwrap()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT"] {
            assert!(!is_idempotent(&m.parse().unwrap()), "{m}");
        }
    }

    proptest::proptest! {
        #[test]
        fn pushback_never_panics_and_round_trips(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16),
            ms in 0i32..=i32::MAX,
        ) {
            let _ = parse_pushback(&bytes);
            proptest::prop_assert_eq!(parse_pushback(ms.to_string().as_bytes()), Some(ms as u64));
            // negative: do not retry
            proptest::prop_assert_eq!(parse_pushback(format!("-{}", ms.max(1)).as_bytes()), None);
        }
    }
}
