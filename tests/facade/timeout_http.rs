//! The timeout layer through the facade, in front of a real axum server on 127.0.0.1:0,
//! called with a real HTTP client.
#![cfg(feature = "timeout")]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use palisade::prelude::*;
use tower::ServiceBuilder;

fn app(calls: Arc<AtomicUsize>) -> Router {
    let slow_calls = calls.clone();
    Router::new()
        .route(
            "/slow",
            get(move || {
                slow_calls.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "too late"
                }
            }),
        )
        .route(
            "/fast",
            get(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { "fast" }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .handle_rejections()
                .timeout_with(TimeoutLayer::new(Duration::from_millis(300))),
        )
}

#[tokio::test]
async fn slow_route_answers_504_problem_json_and_fast_route_is_untouched() {
    let calls = Arc::new(AtomicUsize::new(0));
    let base = support::serve(app(calls.clone())).await;
    let client = reqwest::Client::new();

    let started = Instant::now();
    let res = client.get(format!("{base}/slow")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), 504);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], 504);
    assert_eq!(body["title"], "Gateway Timeout");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    let res = client.get(format!("{base}/fast")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "fast");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn callers_grpc_timeout_shortens_the_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let base = support::serve(app(calls)).await;
    let started = Instant::now();
    let res = reqwest::Client::new()
        .get(format!("{base}/slow"))
        .header("grpc-timeout", "50m")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(300),
        "the 50 ms budget won: {took:?}"
    );
}

#[tokio::test]
async fn grpc_clients_get_deadline_exceeded_trailers_only() {
    let calls = Arc::new(AtomicUsize::new(0));
    let base = support::serve(app(calls)).await;
    let res = reqwest::Client::new()
        .get(format!("{base}/slow"))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "4");
}
