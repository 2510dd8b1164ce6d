//! Errors: a per-attempt timeout fails the attempt with core's [`Elapsed`]; every other
//! error is the inner service's, boxed.

pub use palisade_core::{BoxError, Elapsed};
