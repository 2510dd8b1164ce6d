//! Error types.

pub use palisade_core::CircuitOpen;
