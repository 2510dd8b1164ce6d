//! Integration tests of palisade-breaker, one binary with a module per topic (tower's layout).

mod keyed;
mod model;
mod service;
#[cfg(feature = "redis")]
mod shared_redis;
