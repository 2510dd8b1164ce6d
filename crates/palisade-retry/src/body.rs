//! The request body the inner service sees.

/// Request body of [`Retry`](crate::Retry)'s inner service: the original body (a request
/// that is not retried), a buffered copy replayed on every attempt (a cheap `Bytes` clone),
/// or, over the [`body_limit`](crate::RetryLayer::body_limit), what was read followed by the
/// rest of the original. It is palisade-core's `ReplayBody`, the one body type of every
/// layer that reads bodies (idempotency, shadowing).
pub use palisade_core::body::ReplayBody;

/// The former name of [`ReplayBody`], kept so that existing code compiles.
#[doc(hidden)]
pub type RetryBody<B> = ReplayBody<B>;
