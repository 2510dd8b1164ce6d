//! Black-box tests of the `palisade-ratelimit-service` binary: each starts the built binary
//! with a temporary YAML config and a unique Redis key prefix (deleted afterwards), and
//! talks to it with a tonic client built from Envoy's protos (`envoy-types`). Every await
//! is bounded (`support::STEP`). Outside CI a missing Redis skips the Redis tests.

mod support;

mod check;
mod decisions;
mod failure;
mod reload;
mod requests;
