//! Error types.

use std::fmt;

pub use palisade_core::BulkheadFull;

/// [`KeyedBulkheadLayer::handle_for`](crate::KeyedBulkheadLayer::handle_for) was called with
/// a key of another type than the one the layer's key extractor produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTypeMismatch {
    /// The key type the layer stores (`std::any::type_name`).
    pub expected: &'static str,
    /// The key type given.
    pub given: &'static str,
}

impl fmt::Display for KeyTypeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keyed bulkhead holds keys of type `{}`, not `{}`",
            self.expected, self.given
        )
    }
}

impl std::error::Error for KeyTypeMismatch {}
