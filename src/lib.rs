//! Palisade facade.
