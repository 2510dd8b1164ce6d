//! RFC 9111 (HTTP caching) requirements as tests, one module per section, on paused time.

#[path = "../support/mod.rs"]
mod support;

mod freshness;
mod invalidation;
mod stale;
mod storing;
mod validation;
mod vary;
