//! Black-box tests of the `palisade-gateway` binary: each starts the built binary with a
//! temporary config in front of upstream servers running in the test process on 127.0.0.1
//! ephemeral ports. Every await is bounded (`support::bounded`, `support::STEP`).

mod support;

mod canary;
mod check;
mod grpc;
mod limits;
mod logs;
mod release;
mod reload;
mod routing;
mod streaming;
mod upstreams;
