//! Palisade core (work in progress).
