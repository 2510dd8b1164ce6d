//! Integration tests of palisade-traffic, one binary with a module per topic (tower's layout).

mod support;

mod canary;
mod readiness;
mod shadow;
mod split;
