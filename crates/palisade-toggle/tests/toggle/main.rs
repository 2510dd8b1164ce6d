//! Integration tests of palisade-toggle, one binary with a module per topic (tower's layout).
//! The allocation test is its own binary (`tests/alloc.rs`): its counting global allocator
//! must not see other tests running in parallel.

mod eval;
mod http;
mod provider;
