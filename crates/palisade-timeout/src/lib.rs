//! Palisade timeout (work in progress).
