//! Failure classification: is a `Result<Response, Error>` a success, a failure, or ignored?
//!
//! Every layer that counts outcomes (breaker, retry, bulkhead's adaptive limit, canary
//! analysis, metrics) asks a [`Classifier`]. The defaults:
//!
//! | input | outcome |
//! |---|---|
//! | `Err` carrying a local Palisade refusal (`BulkheadFull`, `RateLimited`, `CircuitOpen` of an inner breaker, `KeyError`, idempotency and store rejections) | [`Outcome::Ignored`]: the upstream was never called, so it says nothing about its health |
//! | any other `Err`, including [`Elapsed`](crate::Elapsed) | [`Outcome::Failure`] |
//! | HTTP response with a `grpc-status` header (trailers-only gRPC) | failure for UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN, DATA_LOSS; success otherwise |
//! | HTTP response, status 5xx, 408 or 429 | failure |
//! | any other response | success |
//!
//! A normal (not trailers-only) gRPC response carries `grpc-status` in trailers, which are
//! only known after the body has been read; the classifier sees the head only, so such a
//! response counts as a success unless its HTTP status says otherwise.
//!
//! This follows tower-http's `classify` module (`ServerErrorsAsFailures`,
//! `GrpcErrorsAsFailures`) but answers synchronously from the response head with one
//! three-way outcome, which is what breakers and retry budgets need.
//!
//! # Example
//! ```
//! use palisade_core::classify::{Classifier, DefaultClassifier, Outcome, classify_fn};
//!
//! let ok = http::Response::builder().status(200).body(()).unwrap();
//! let busy = http::Response::builder().status(503).body(()).unwrap();
//! let c = DefaultClassifier::new();
//! assert_eq!(Classifier::<_, std::io::Error>::classify(&c, Ok(&ok)), Outcome::Success);
//! assert_eq!(Classifier::<_, std::io::Error>::classify(&c, Ok(&busy)), Outcome::Failure);
//!
//! // Your own rule: 404s are not the upstream's fault, so ignore them.
//! let custom = classify_fn(|r: Result<&http::Response<()>, &std::io::Error>| match r {
//!     Ok(res) if res.status() == 404 => Outcome::Ignored,
//!     Ok(res) if res.status().is_server_error() => Outcome::Failure,
//!     Ok(_) => Outcome::Success,
//!     Err(_) => Outcome::Failure,
//! });
//! let missing = http::Response::builder().status(404).body(()).unwrap();
//! assert_eq!(custom.classify(Ok(&missing)), Outcome::Ignored);
//! ```

use std::fmt;

use http::StatusCode;

use crate::grpc::GrpcCode;
use crate::request::ResponseParts;

/// The verdict on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed and counts against the upstream (opens breakers, triggers retries).
    Failure,
    /// The call counts as neither (e.g. a client error the upstream is not to blame for).
    Ignored,
}

impl Outcome {
    /// `true` for [`Outcome::Failure`].
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Failure)
    }
    /// `true` for [`Outcome::Success`].
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Success)
    }
}

/// Decides the [`Outcome`] of a call from its result.
pub trait Classifier<Res, E>: Clone + Send + Sync + 'static {
    /// Classifies one result. Must be cheap and must not panic.
    fn classify(&self, result: Result<&Res, &E>) -> Outcome;
}

/// A set of gRPC codes, as a bit mask (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GrpcCodes(u32);

impl GrpcCodes {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }
    /// The default failure set: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL,
    /// UNKNOWN and DATA_LOSS.
    pub const fn default_failures() -> Self {
        Self::empty()
            .with(GrpcCode::Unavailable)
            .with(GrpcCode::DeadlineExceeded)
            .with(GrpcCode::ResourceExhausted)
            .with(GrpcCode::Internal)
            .with(GrpcCode::Unknown)
            .with(GrpcCode::DataLoss)
    }
    /// This set plus `code`.
    #[must_use]
    pub const fn with(self, code: GrpcCode) -> Self {
        Self(self.0 | (1 << code as u32))
    }
    /// This set without `code`.
    #[must_use]
    pub const fn without(self, code: GrpcCode) -> Self {
        Self(self.0 & !(1 << code as u32))
    }
    /// Whether `code` is in the set.
    pub const fn contains(self, code: GrpcCode) -> bool {
        self.0 & (1 << code as u32) != 0
    }
}

impl fmt::Debug for GrpcCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(
                (0..=16)
                    .filter_map(GrpcCode::from_u32)
                    .filter(|c| self.contains(*c)),
            )
            .finish()
    }
}

/// The default classifier for HTTP and gRPC responses (see the [module docs](self)).
///
/// Implemented for every response type with [`ResponseParts`]: `http::Response<B>` and,
/// with the `reqwest` feature, `reqwest::Response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultClassifier {
    grpc_failures: GrpcCodes,
    http_408_429_fail: bool,
}

impl DefaultClassifier {
    /// The defaults: 5xx, 408, 429 and the gRPC codes of [`GrpcCodes::default_failures`] fail.
    pub const fn new() -> Self {
        Self {
            grpc_failures: GrpcCodes::default_failures(),
            http_408_429_fail: true,
        }
    }
    /// Replaces the set of gRPC codes that count as failures.
    #[must_use]
    pub const fn grpc_failures(mut self, codes: GrpcCodes) -> Self {
        self.grpc_failures = codes;
        self
    }
    /// Whether 408 and 429 count as failures (default `true`); 5xx always do.
    #[must_use]
    pub const fn timeouts_and_throttling_fail(mut self, yes: bool) -> Self {
        self.http_408_429_fail = yes;
        self
    }

    /// Classifies a response head (status and headers).
    pub fn classify_response<R: ResponseParts + ?Sized>(&self, res: &R) -> Outcome {
        if let Some(code) = GrpcCode::from_headers(res.headers()) {
            return if self.grpc_failures.contains(code) {
                Outcome::Failure
            } else {
                Outcome::Success
            };
        }
        let status = res.status();
        if status.is_server_error()
            || (self.http_408_429_fail
                && (status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS))
        {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

impl Default for DefaultClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl DefaultClassifier {
    /// Classifies an error: a local Palisade refusal is [`Outcome::Ignored`], anything else
    /// (transport errors, [`Elapsed`](crate::Elapsed)) a failure.
    pub fn classify_error<E: 'static>(&self, err: &E) -> Outcome {
        let any: &dyn std::any::Any = err;
        let dyn_err: Option<&(dyn std::error::Error + 'static)> =
            if let Some(boxed) = any.downcast_ref::<crate::BoxError>() {
                Some(&**boxed)
            } else {
                None
            };
        match dyn_err.and_then(crate::rejection::find_rejection) {
            Some(r) if r.kind() != "timeout" => Outcome::Ignored,
            _ => Outcome::Failure,
        }
    }
}

impl<Res, E> Classifier<Res, E> for DefaultClassifier
where
    Res: ResponseParts,
    E: 'static,
{
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(res) => self.classify_response(res),
            Err(e) => self.classify_error(e),
        }
    }
}

/// A classifier for any response type: `Err` is a failure, `Ok` a success.
///
/// Use it for non-HTTP services (`Service<String>`, test mocks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorsAsFailures;

impl<Res, E> Classifier<Res, E> for ErrorsAsFailures {
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// A classifier made from a closure; see [`classify_fn`].
#[derive(Clone, Copy)]
pub struct ClassifyFn<F>(F);

impl<F> fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifyFn").finish_non_exhaustive()
    }
}

/// Makes a [`Classifier`] from a closure `Fn(Result<&Res, &E>) -> Outcome`.
pub fn classify_fn<F>(f: F) -> ClassifyFn<F> {
    ClassifyFn(f)
}

impl<F, Res, E> Classifier<Res, E> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome + Clone + Send + Sync + 'static,
{
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        (self.0)(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Response};

    type E = std::io::Error;

    fn res(status: u16) -> Response<()> {
        Response::builder().status(status).body(()).unwrap()
    }

    fn grpc(code: &'static str) -> Response<()> {
        let mut r = res(200);
        r.headers_mut()
            .insert("grpc-status", HeaderValue::from_static(code));
        r
    }

    #[test]
    fn http_statuses() {
        let c = DefaultClassifier::new();
        for (status, want) in [
            (200, Outcome::Success),
            (204, Outcome::Success),
            (301, Outcome::Success),
            (400, Outcome::Success),
            (404, Outcome::Success),
            (408, Outcome::Failure),
            (429, Outcome::Failure),
            (500, Outcome::Failure),
            (502, Outcome::Failure),
            (503, Outcome::Failure),
            (504, Outcome::Failure),
        ] {
            assert_eq!(
                Classifier::<_, E>::classify(&c, Ok(&res(status))),
                want,
                "{status}"
            );
        }
        let lenient = c.timeouts_and_throttling_fail(false);
        assert_eq!(
            Classifier::<_, E>::classify(&lenient, Ok(&res(429))),
            Outcome::Success
        );
        assert_eq!(
            Classifier::<_, E>::classify(&lenient, Ok(&res(500))),
            Outcome::Failure
        );
    }

    #[test]
    fn local_refusals_are_ignored_but_timeouts_fail() {
        use crate::BoxError;
        let c = DefaultClassifier::new();
        let full: BoxError = crate::BulkheadFull::new(None).into();
        let limited: BoxError =
            crate::RateLimited::new(std::time::Duration::ZERO, http::HeaderMap::new(), vec![])
                .into();
        let elapsed: BoxError = crate::Elapsed::new(std::time::Duration::ZERO).into();
        let io: BoxError = "connection reset".into();
        let cls = |e: &BoxError| Classifier::<Response<()>, BoxError>::classify(&c, Err(e));
        assert_eq!(cls(&full), Outcome::Ignored);
        assert_eq!(cls(&limited), Outcome::Ignored);
        assert_eq!(cls(&elapsed), Outcome::Failure);
        assert_eq!(cls(&io), Outcome::Failure);
    }

    #[test]
    fn errors_fail() {
        let err = E::other("x");
        assert_eq!(
            Classifier::<Response<()>, E>::classify(&DefaultClassifier::new(), Err(&err)),
            Outcome::Failure
        );
        assert_eq!(
            Classifier::<u8, E>::classify(&ErrorsAsFailures, Err(&err)),
            Outcome::Failure
        );
        assert_eq!(
            Classifier::<u8, E>::classify(&ErrorsAsFailures, Ok(&1)),
            Outcome::Success
        );
    }

    #[test]
    fn grpc_trailers_only_statuses() {
        let c = DefaultClassifier::new();
        let failing = ["14", "4", "8", "13", "2", "15"];
        for code in failing {
            assert_eq!(
                Classifier::<_, E>::classify(&c, Ok(&grpc(code))),
                Outcome::Failure,
                "{code}"
            );
        }
        for code in ["0", "1", "3", "5", "6", "7", "9", "10", "11", "12", "16"] {
            assert_eq!(
                Classifier::<_, E>::classify(&c, Ok(&grpc(code))),
                Outcome::Success,
                "{code}"
            );
        }
        // Malformed grpc-status: fall back to the HTTP status.
        assert_eq!(
            Classifier::<_, E>::classify(&c, Ok(&grpc("014"))),
            Outcome::Success
        );
        let only_unavailable = c.grpc_failures(GrpcCodes::empty().with(GrpcCode::Unavailable));
        assert_eq!(
            Classifier::<_, E>::classify(&only_unavailable, Ok(&grpc("13"))),
            Outcome::Success
        );
    }

    #[test]
    fn code_set() {
        let s = GrpcCodes::default_failures().without(GrpcCode::Internal);
        assert!(!s.contains(GrpcCode::Internal));
        assert!(s.contains(GrpcCode::Unavailable));
        assert!(!s.contains(GrpcCode::Ok));
        assert_eq!(
            format!("{:?}", GrpcCodes::empty().with(GrpcCode::Aborted)),
            "{Aborted}"
        );
    }
}
