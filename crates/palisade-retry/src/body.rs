//! The request body the inner service sees.

/// Request body of [`Retry`](crate::Retry)'s inner service: the original body (a request
/// that is not retried), a buffered copy replayed on every attempt (a cheap `Bytes` clone),
/// or, over the [`body_limit`](crate::RetryLayer::body_limit), what was read followed by the
/// rest of the original. It is palisade-core's [`ReplayBody`](palisade_core::body::ReplayBody),
/// shared with the other layers that read bodies.
pub type RetryBody<B> = palisade_core::body::ReplayBody<B>;
