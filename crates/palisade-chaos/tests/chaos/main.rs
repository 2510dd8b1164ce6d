//! Integration tests of palisade-chaos, one binary with a module per topic (tower's layout).

mod faults;
mod proof;
#[cfg(feature = "record")]
mod record;
