//! Palisade around hyper-util's legacy `Client`, calling a local flaky server.
//!
//! ```text
//! cargo run --example hyper_client
//! ```
//!
//! The same client stack as `reqwest_client`, on `http::Request<B>`, outermost first: a 2 s
//! deadline for the whole call, retry ×3 with full jitter and a retry budget, a wait-mode
//! rate limit (100 attempts/s), a breaker, and a 300 ms per-attempt timeout in outbound mode
//! (it forwards the budget as `grpc-timeout`). The retry layer hands the client a
//! [`RetryBody`], which replays buffered bytes on each attempt, so the client is built for
//! `RetryBody<B>`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::BoxError;
use palisade::breaker::BreakerHandle;
use palisade::prelude::*;
use palisade::retry::RetryBody;
use tower::Service;

#[path = "common/client.rs"]
pub(crate) mod common;

/// The request body the stack accepts.
pub(crate) type Body = Full<Bytes>;

/// The client stack around hyper-util's client, and its breaker's handle.
pub(crate) fn client() -> Result<
    (
        impl Service<http::Request<Body>, Response = http::Response<Incoming>, Error = BoxError> + Clone,
        BreakerHandle,
    ),
    ConfigError,
> {
    let (layers, breaker) = common::layers()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<RetryBody<Body>>();
    Ok((layers.service(client), breaker))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, breaker) = client()?;
    common::run(client, &breaker, |url| {
        http::Request::get(url)
            .body(Full::default())
            .expect("a valid request")
    })
    .await
}
