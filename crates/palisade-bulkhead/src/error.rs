//! Error types.

pub use palisade_core::BulkheadFull;
