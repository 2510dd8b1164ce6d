//! What counts as an *accept*: [`OverloadClassifier`].

use http::StatusCode;
use palisade_core::classify::{Classifier, DefaultClassifier, Outcome};
use palisade_core::{GrpcCode, ResponseParts};

/// The throttle's default classifier: did the upstream *accept* the request?
///
/// | result | outcome | counts as |
/// |---|---|---|
/// | HTTP 429 or 503 | [`Outcome::Failure`] | a rejection (overload) |
/// | trailers-only gRPC RESOURCE_EXHAUSTED (8) or UNAVAILABLE (14) | [`Outcome::Failure`] | a rejection |
/// | any other response, including other 5xx and gRPC errors | [`Outcome::Success`] | an accept: the upstream took the request and answered, even with an error |
/// | `Err` carrying a Palisade refusal of an inner layer (breaker, bulkhead, …) | [`Outcome::Ignored`] | an accept: the upstream said nothing, so it must not throttle |
/// | any other `Err` (connect refused, reset, timeout) | [`Outcome::Failure`] | a rejection: the upstream did not take it |
///
/// This is narrower than core's [`DefaultClassifier`] on purpose: the SRE book's
/// throttle counts *rejections for overload*, and a 500 is an answer, not a refusal. To
/// throttle on every failure instead, pass `DefaultClassifier::new()` to
/// [`AdaptiveThrottleLayer::classifier`](super::AdaptiveThrottleLayer::classifier).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverloadClassifier;

impl OverloadClassifier {
    /// Whether a response head is an overload rejection (429, 503, gRPC RESOURCE_EXHAUSTED
    /// or UNAVAILABLE).
    pub fn is_overload<R: ResponseParts + ?Sized>(res: &R) -> bool {
        if let Some(code) = GrpcCode::from_headers(res.headers()) {
            return matches!(code, GrpcCode::ResourceExhausted | GrpcCode::Unavailable);
        }
        matches!(
            res.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    }
}

impl<Res: ResponseParts, E: 'static> Classifier<Res, E> for OverloadClassifier {
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(res) if Self::is_overload(res) => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(e) => DefaultClassifier::new().classify_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::BoxError;

    fn res(status: u16, grpc: Option<&'static str>) -> http::Response<()> {
        let mut r = http::Response::builder().status(status).body(()).unwrap();
        if let Some(code) = grpc {
            r.headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static(code));
        }
        r
    }

    #[test]
    fn only_overload_answers_and_transport_errors_are_rejections() {
        let c = OverloadClassifier;
        let cls = |r: &http::Response<()>| Classifier::<_, BoxError>::classify(&c, Ok(r));
        for (status, grpc, want) in [
            (200, None, Outcome::Success),
            (404, None, Outcome::Success),
            (500, None, Outcome::Success),
            (502, None, Outcome::Success),
            (429, None, Outcome::Failure),
            (503, None, Outcome::Failure),
            (200, Some("8"), Outcome::Failure),
            (200, Some("14"), Outcome::Failure),
            (200, Some("13"), Outcome::Success),
            (200, Some("0"), Outcome::Success),
        ] {
            assert_eq!(cls(&res(status, grpc)), want, "{status} {grpc:?}");
        }
        let io: BoxError = "connection refused".into();
        let local: BoxError = palisade_core::CircuitOpen::new(None).into();
        let cls_err = |e: &BoxError| Classifier::<http::Response<()>, _>::classify(&c, Err(e));
        assert_eq!(cls_err(&io), Outcome::Failure);
        assert_eq!(cls_err(&local), Outcome::Ignored);
    }
}
