//! The local upstream the client examples call (not an example itself).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;

/// Counts the upstream's handler executions per route.
#[derive(Debug, Default)]
pub(crate) struct Hits {
    pub(crate) flaky: AtomicUsize,
    pub(crate) down: AtomicUsize,
}

/// The upstream: `/fast` echoes the `grpc-timeout` it saw, `/slow` takes 2 s, `/flaky`
/// fails twice with 503 and then succeeds (and so on), `/down` always answers 503.
pub(crate) fn upstream(hits: Arc<Hits>) -> Router {
    let (h1, h2) = (hits.clone(), hits);
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
        .route(
            "/flaky",
            get(move || async move {
                match h1.flaky.fetch_add(1, Ordering::SeqCst) % 3 {
                    2 => (StatusCode::OK, "ok"),
                    _ => (StatusCode::SERVICE_UNAVAILABLE, "try again"),
                }
            }),
        )
        .route(
            "/down",
            get(move || async move {
                h2.down.fetch_add(1, Ordering::SeqCst);
                (StatusCode::SERVICE_UNAVAILABLE, "down")
            }),
        )
}
