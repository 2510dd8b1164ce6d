//! Typed rejections: one error type per refusal, each knowing its HTTP and gRPC answer.
//!
//! Layers return these boxed in a [`BoxError`](crate::BoxError), exactly like tower's
//! `Elapsed` or `Overloaded`, so plain Tower users can match them with `err.is::<T>()`.
//! [`HandleRejections`](crate::HandleRejections) (or [`rejection_response`](crate::response::rejection_response))
//! turns them into responses, so an axum `Router` stays infallible.
//!
//! | rejection | HTTP | gRPC |
//! |---|---|---|
//! | [`Elapsed`] | 504 | DEADLINE_EXCEEDED |
//! | [`CircuitOpen`] | 503 + `Retry-After` | UNAVAILABLE |
//! | [`BulkheadFull`] | 503 + `Retry-After` | RESOURCE_EXHAUSTED |
//! | [`RateLimited`] | 429 + `Retry-After` + RateLimit headers | RESOURCE_EXHAUSTED |
//! | [`IdempotencyKeyMissing`], [`IdempotencyKeyInvalid`], [`KeyError`](crate::KeyError) | 400 | INVALID_ARGUMENT |
//! | [`IdempotencyConflict`] | 409 | ABORTED |
//! | [`IdempotencyMismatch`] | 422 | FAILED_PRECONDITION |
//! | [`StoreUnavailable`] | 503 + `Retry-After` | UNAVAILABLE |
//! | [`Throttled`] | 503 + `x-palisade-throttled: 1` | UNAVAILABLE |
//! | [`AnyRejection`] (your own) | what it says | what it says |
//!
//! Bodies are RFC 9457 problem details. Where no registered problem type exists the type is
//! `about:blank` with the status phrase as title and the specifics in `detail`; rate limiting
//! uses the IANA `https://iana.org/assignments/http-problem-types#quota-exceeded` type from
//! the RateLimit draft (draft-ietf-httpapi-ratelimit-headers, "Problem Types"), with the
//! `violated-policies` member listing the quotas that refused the request.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value};

use crate::grpc::GrpcCode;

/// What every Palisade refusal knows about itself.
pub trait Rejection: Error + Send + Sync + 'static {
    /// A stable, snake_case name for metrics and events (`"timeout"`, `"rate_limited"`).
    fn kind(&self) -> &'static str;
    /// The HTTP status to answer with.
    fn status(&self) -> StatusCode;
    /// The gRPC status code to answer with.
    fn grpc_code(&self) -> GrpcCode;
    /// How long the client should wait before retrying, sent as `Retry-After` (whole seconds,
    /// rounded up) and as gRPC `grpc-retry-pushback-ms`.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// Adds headers of its own (e.g. `RateLimit`) to an HTTP rejection response.
    fn extra_headers(&self, headers: &mut HeaderMap) {
        let _ = headers;
    }
    /// The problem type URI (RFC 9457 §3.1.1); `about:blank` unless a registered type fits.
    fn problem_type(&self) -> &'static str {
        "about:blank"
    }
    /// The problem title; for `about:blank` this is the status phrase (RFC 9457 §4.2.1).
    fn title(&self) -> &'static str {
        self.status().canonical_reason().unwrap_or("Error")
    }
    /// Human-readable specifics for the `detail` member; defaults to the `Display` text.
    fn detail(&self) -> String {
        self.to_string()
    }
    /// Adds extension members to the problem object (e.g. `violated-policies`).
    fn problem_extensions(&self, members: &mut Map<String, Value>) {
        let _ = members;
    }
}

/// `impl Rejection` for a type whose kind, status and gRPC code are fixed (and whose
/// `retry_after` is its field of that name, with `, retry_after`).
macro_rules! rejection {
    ($ty:ty, $kind:literal, $status:ident, $grpc:ident $(, $retry_after:ident)?) => {
        impl Rejection for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn status(&self) -> StatusCode {
                StatusCode::$status
            }
            fn grpc_code(&self) -> GrpcCode {
                GrpcCode::$grpc
            }
            $(fn retry_after(&self) -> Option<Duration> {
                self.$retry_after
            })?
        }
    };
}

macro_rules! simple_error {
    ($ty:ty, $msg:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($msg)
            }
        }
        impl Error for $ty {}
    };
}

/// The request took longer than its timeout or deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Elapsed {
    /// The timeout that fired (the configured one, or the shorter propagated deadline).
    pub timeout: Duration,
}

impl Elapsed {
    /// A rejection for a request that ran out of `timeout`.
    pub const fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request timed out after {:?}", self.timeout)
    }
}
impl Error for Elapsed {}

rejection!(Elapsed, "timeout", GATEWAY_TIMEOUT, DeadlineExceeded);

/// The circuit breaker is open (or half-open with all probe slots taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CircuitOpen {
    /// Time until the breaker lets a probe through, when known.
    pub retry_after: Option<Duration>,
}

impl CircuitOpen {
    /// A rejection telling the client to come back after `retry_after`.
    pub const fn new(retry_after: Option<Duration>) -> Self {
        Self { retry_after }
    }
}
simple_error!(CircuitOpen, "circuit breaker is open");

rejection!(
    CircuitOpen,
    "circuit_open",
    SERVICE_UNAVAILABLE,
    Unavailable,
    retry_after
);

/// The bulkhead has no free slot and its queue is full (or the queue wait ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadFull {
    /// A hint for when a slot is likely to be free, when known.
    pub retry_after: Option<Duration>,
}

impl BulkheadFull {
    /// A rejection with an optional retry hint.
    pub const fn new(retry_after: Option<Duration>) -> Self {
        Self { retry_after }
    }
}
simple_error!(BulkheadFull, "bulkhead is full");

rejection!(
    BulkheadFull,
    "bulkhead_full",
    SERVICE_UNAVAILABLE,
    ResourceExhausted,
    retry_after
);

/// A rate limit quota is exhausted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimited {
    /// Time until the request would be admitted.
    pub retry_after: Duration,
    /// Headers to send with the 429 (`RateLimit-Policy`, `RateLimit`, legacy `X-RateLimit-*`).
    pub headers: HeaderMap,
    /// Names of the policies that refused the request (problem member `violated-policies`).
    pub violated_policies: Vec<String>,
}

impl RateLimited {
    /// A rejection with the given wait, headers and violated policy names.
    pub fn new(retry_after: Duration, headers: HeaderMap, violated_policies: Vec<String>) -> Self {
        Self {
            retry_after,
            headers,
            violated_policies,
        }
    }
}
simple_error!(RateLimited, "rate limit exceeded");

impl Rejection for RateLimited {
    fn kind(&self) -> &'static str {
        "rate_limited"
    }
    fn status(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::ResourceExhausted
    }
    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }
    fn extra_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        // RFC 6585 §4: a 429 MUST NOT be stored by a cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    fn problem_type(&self) -> &'static str {
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    }
    fn title(&self) -> &'static str {
        "Request cannot be satisfied as assigned quota has been exceeded"
    }
    fn problem_extensions(&self, members: &mut Map<String, Value>) {
        members.insert(
            "violated-policies".to_owned(),
            Value::Array(
                self.violated_policies
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
        );
    }
}

/// A request reused an `Idempotency-Key` whose original request is still being processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IdempotencyConflict;

impl IdempotencyConflict {
    /// The rejection.
    pub const fn new() -> Self {
        Self
    }
}
simple_error!(
    IdempotencyConflict,
    "a request is outstanding for this Idempotency-Key"
);

/// The problem type of [`IdempotencyConflict`], so that a client (a hedging or retrying
/// layer) can tell "the original request with this key is still running" from any other 409.
pub const IDEMPOTENCY_CONFLICT_TYPE: &str = "urn:palisade:problem:idempotency-conflict";

impl Rejection for IdempotencyConflict {
    fn kind(&self) -> &'static str {
        "idempotency_conflict"
    }
    fn status(&self) -> StatusCode {
        StatusCode::CONFLICT
    }
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::Aborted
    }
    fn problem_type(&self) -> &'static str {
        IDEMPOTENCY_CONFLICT_TYPE
    }
    fn title(&self) -> &'static str {
        "A request is outstanding for this Idempotency-Key"
    }
}

/// Response extension on every response rendered from a rejection (by
/// [`HandleRejections`](crate::HandleRejections) or [`crate::response::error_response`]), so
/// that a layer further out can tell Palisade's own refusals (a 429 or 503 from a layer that
/// ran before the handler) from the handler's responses. The idempotency layer never stores
/// a response carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenderedRejection {
    /// The rejection's [`kind`](Rejection::kind).
    pub kind: &'static str,
}

impl RenderedRejection {
    /// The marker for a rejection of `kind`.
    pub const fn new(kind: &'static str) -> Self {
        Self { kind }
    }
}

/// A request reused an `Idempotency-Key` with a different payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IdempotencyMismatch;

impl IdempotencyMismatch {
    /// The rejection.
    pub const fn new() -> Self {
        Self
    }
}
simple_error!(
    IdempotencyMismatch,
    "Idempotency-Key is already used with a different payload"
);

rejection!(
    IdempotencyMismatch,
    "idempotency_mismatch",
    UNPROCESSABLE_ENTITY,
    FailedPrecondition
);

/// The route requires an `Idempotency-Key` and the request has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IdempotencyKeyMissing;

impl IdempotencyKeyMissing {
    /// The rejection.
    pub const fn new() -> Self {
        Self
    }
}
simple_error!(IdempotencyKeyMissing, "Idempotency-Key is missing");

rejection!(
    IdempotencyKeyMissing,
    "idempotency_key_missing",
    BAD_REQUEST,
    InvalidArgument
);

/// The `Idempotency-Key` header is malformed (empty, too long, repeated, not a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyKeyInvalid {
    /// What is wrong with it, e.g. `"longer than 255 characters"`.
    pub reason: &'static str,
}

impl IdempotencyKeyInvalid {
    /// A rejection saying what is wrong with the key.
    pub const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

impl fmt::Display for IdempotencyKeyInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Idempotency-Key is invalid: {}", self.reason)
    }
}
impl Error for IdempotencyKeyInvalid {}

rejection!(
    IdempotencyKeyInvalid,
    "idempotency_key_invalid",
    BAD_REQUEST,
    InvalidArgument
);

/// A shared state store (e.g. Redis) could not be reached, and the layer is configured to
/// fail closed rather than risk doing the work twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreUnavailable {
    /// When to try again, when known.
    pub retry_after: Option<Duration>,
}

impl StoreUnavailable {
    /// The rejection with an optional retry hint.
    pub const fn new(retry_after: Option<Duration>) -> Self {
        Self { retry_after }
    }
}
simple_error!(StoreUnavailable, "state store is unavailable");

rejection!(
    StoreUnavailable,
    "store_unavailable",
    SERVICE_UNAVAILABLE,
    Unavailable,
    retry_after
);

/// A client-side adaptive throttle shed the request locally, without sending it: the
/// upstream has been refusing most requests lately (Google SRE book, "Handling Overload").
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Throttled {
    /// The local rejection probability when the request was shed, in `[0, 1]`.
    pub probability: f64,
}

impl Throttled {
    /// A rejection made with rejection probability `probability`.
    pub const fn new(probability: f64) -> Self {
        Self { probability }
    }
}
simple_error!(
    Throttled,
    "request throttled by the client: the upstream is rejecting most requests"
);

impl Rejection for Throttled {
    fn kind(&self) -> &'static str {
        "throttled"
    }
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::Unavailable
    }
    fn extra_headers(&self, headers: &mut HeaderMap) {
        headers.insert(crate::header::THROTTLED, HeaderValue::from_static("1"));
    }
}

/// A rejection of your own, carried through `BoxError` so that
/// [`HandleRejections`](crate::HandleRejections) renders it like the built-in ones.
pub struct AnyRejection(Box<dyn Rejection>);

impl AnyRejection {
    /// Wraps any [`Rejection`].
    pub fn new(rejection: impl Rejection) -> Self {
        Self(Box::new(rejection))
    }
    /// The wrapped rejection.
    pub fn get(&self) -> &dyn Rejection {
        &*self.0
    }
}

impl fmt::Debug for AnyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyRejection")
            .field(&format_args!("{}", self.0))
            .finish()
    }
}
impl fmt::Display for AnyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl Error for AnyRejection {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// Finds the first Palisade rejection in an error or its `source()` chain.
///
/// Knows every rejection defined in this crate and [`AnyRejection`].
pub fn find_rejection<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a dyn Rejection> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(r) = as_rejection(e) {
            return Some(r);
        }
        current = e.source();
    }
    None
}

fn as_rejection<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a dyn Rejection> {
    macro_rules! try_types {
        ($($ty:ty),*) => {
            $(if let Some(r) = e.downcast_ref::<$ty>() { return Some(r); })*
        };
    }
    try_types!(
        Elapsed,
        CircuitOpen,
        BulkheadFull,
        RateLimited,
        IdempotencyConflict,
        IdempotencyMismatch,
        IdempotencyKeyMissing,
        IdempotencyKeyInvalid,
        StoreUnavailable,
        Throttled,
        crate::key::KeyError
    );
    e.downcast_ref::<AnyRejection>().map(AnyRejection::get)
}

#[cfg(test)]
mod tests;
