//! Palisade around hyper-util's legacy `Client`, calling a local flaky server.
//!
//! ```text
//! cargo run --example hyper_client
//! ```
//!
//! The same client stack as `reqwest_client`, on `http::Request<B>`: a 300 ms timeout in
//! outbound mode, which also forwards the remaining budget as `grpc-timeout`.

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::prelude::*;
use tower::{ServiceBuilder, ServiceExt};

/// A local server: `/fast` answers at once and echoes the budget it saw; `/slow` takes 2 s.
pub(crate) fn upstream() -> Router {
    Router::new()
        .route(
            "/fast",
            get(|h: HeaderMap| async move {
                let seen = h
                    .get("grpc-timeout")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                ([("x-seen-grpc-timeout", seen)], "ok")
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }),
        )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, upstream()).await });

    let client = ServiceBuilder::new()
        .timeout_with(TimeoutLayer::new(Duration::from_millis(300)).outbound(true))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let req = http::Request::get(format!("http://{addr}/fast")).body(Empty::new())?;
    let res = client.clone().oneshot(req).await?;
    println!(
        "GET /fast → {} (server saw grpc-timeout {})",
        res.status(),
        res.headers()["x-seen-grpc-timeout"].to_str()?
    );

    let req = http::Request::get(format!("http://{addr}/slow")).body(Empty::new())?;
    let err = client.oneshot(req).await.unwrap_err();
    println!(
        "GET /slow → error: {err} (is Elapsed: {})",
        err.is::<palisade::rejection::Elapsed>()
    );
    Ok(())
}
