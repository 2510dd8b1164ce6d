//! Error types: the core rejections this layer returns.
//!
//! A refused request fails with [`RateLimited`] (429 / RESOURCE_EXHAUSTED, with
//! `Retry-After`, `RateLimit-Policy` and `RateLimit`); a key that cannot be extracted with
//! [`KeyError`] (400); a failed Redis in fail-closed mode with [`StoreUnavailable`] (503).

pub use palisade_core::{KeyError, RateLimited, StoreUnavailable};
