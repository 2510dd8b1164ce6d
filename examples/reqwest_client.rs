//! Palisade around an outgoing `reqwest::Client`, calling a local flaky server.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```
//!
//! `reqwest::Client` implements `tower::Service<reqwest::Request>`, so Palisade layers wrap it
//! directly. The client stack, outermost first:
//!
//! | layer | why |
//! |---|---|
//! | timeout 2 s | one deadline for the whole call, retries included |
//! | retry ×3, full jitter, budget | 502/503/504/429, resets and per-attempt timeouts; at most 20 % extra load (+10/s) |
//! | rate limit, wait mode | at most 100 attempts per second leave this process; the rest wait |
//! | breaker | once half of the last 20 attempts (10 at least) failed, stop calling for 5 s |
//! | timeout 300 ms, outbound | per attempt; tells the server with `grpc-timeout` |
//!
//! The per-attempt timeout sits inside the breaker so that a slow attempt counts as a failure.

use palisade::BoxError;
use palisade::breaker::BreakerHandle;
use palisade::prelude::*;
use tower::Service;

#[path = "common/client.rs"]
pub(crate) mod common;

/// The client stack around `reqwest::Client`, and its breaker's handle.
pub(crate) fn client() -> Result<
    (
        impl Service<reqwest::Request, Response = reqwest::Response, Error = BoxError> + Clone,
        BreakerHandle,
    ),
    ConfigError,
> {
    let (layers, breaker) = common::layers()?;
    Ok((layers.service(reqwest::Client::new()), breaker))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, breaker) = client()?;
    common::run(client, &breaker, |url| {
        reqwest::Request::new(reqwest::Method::GET, url.parse().expect("a valid URL"))
    })
    .await
}
