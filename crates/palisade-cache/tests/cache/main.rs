//! Integration tests of palisade-cache, one binary with a module per topic (tower's layout).
//! The allocation test is its own binary (`tests/alloc/main.rs`): its counting global
//! allocator must not see other tests running in parallel.

mod support;

mod coalesce;
mod events;
mod fallback;
mod memory;
mod misses;
#[cfg(feature = "redis")]
mod redis;
mod rfc9111;
mod spawn;
