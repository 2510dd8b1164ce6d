//! Palisade around an outgoing `reqwest::Client`, calling a local flaky server.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```
//!
//! `reqwest::Client` implements `tower::Service<reqwest::Request>`, so Palisade layers wrap it
//! directly. Here the timeout runs in outbound mode: it stops waiting after 300 ms *and*
//! tells the server so with `grpc-timeout`, so the server can give up at the same moment.

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use palisade::prelude::*;
use tower::{Service, ServiceBuilder, ServiceExt};

/// A local server: `/fast` answers at once, `/slow` after 2 s. Both echo the budget they were
/// given in `x-seen-grpc-timeout`.
pub(crate) fn upstream() -> Router {
    async fn echo(
        headers: HeaderMap,
        delay: Duration,
    ) -> ([(&'static str, String); 1], &'static str) {
        tokio::time::sleep(delay).await;
        let seen = headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        ([("x-seen-grpc-timeout", seen)], "ok")
    }
    Router::new()
        .route("/fast", get(|h: HeaderMap| echo(h, Duration::ZERO)))
        .route("/slow", get(|h: HeaderMap| echo(h, Duration::from_secs(2))))
}

/// The client stack.
pub(crate) fn client()
-> impl Service<reqwest::Request, Response = reqwest::Response, Error = BoxError> + Clone {
    ServiceBuilder::new()
        .timeout_with(TimeoutLayer::new(Duration::from_millis(300)).outbound(true))
        .service(reqwest::Client::new())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, upstream()).await });

    let client = client();
    let fast = reqwest::Request::new(reqwest::Method::GET, format!("http://{addr}/fast").parse()?);
    let res = client.clone().oneshot(fast).await?;
    println!(
        "GET /fast → {} (server saw grpc-timeout {})",
        res.status(),
        res.headers()["x-seen-grpc-timeout"].to_str()?
    );

    let slow = reqwest::Request::new(reqwest::Method::GET, format!("http://{addr}/slow").parse()?);
    let err = client.oneshot(slow).await.unwrap_err();
    println!(
        "GET /slow → error: {err} (is Elapsed: {})",
        err.is::<palisade::rejection::Elapsed>()
    );
    Ok(())
}
