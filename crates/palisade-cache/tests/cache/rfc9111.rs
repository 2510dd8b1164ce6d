//! RFC 9111 (HTTP caching) requirements as tests, one module per section, on paused time.

mod freshness;
mod invalidation;
mod range;
mod stale;
mod storing;
mod validation;
mod vary;
