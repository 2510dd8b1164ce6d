//! Behind an axum `Router`, inside `HandleRejectionsLayer`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use palisade_core::HandleRejectionsLayer;
use palisade_core::key::HeaderKey;
use palisade_ratelimit::{Quota, RateLimitLayer};
use tower::{ServiceBuilder, ServiceExt};

fn app() -> Router {
    let limit = RateLimitLayer::new(
        HeaderKey::new(http::HeaderName::from_static("x-api-key")),
        Quota::per_minute("default", 2).unwrap(),
    );
    Router::new().route("/", get(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(HandleRejectionsLayer::new())
            .layer(limit),
    )
}

fn req(key: Option<&str>) -> Request<Body> {
    let mut b = Request::get("/");
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn router_answers_429_with_headers_and_400_without_key() {
    let app = app();
    for r in [1, 0] {
        let res = app.clone().oneshot(req(Some("a"))).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["ratelimit"],
            format!("\"default\";r={r};t={}", 30 * (2 - r))
        );
    }
    let res = app.clone().oneshot(req(Some("a"))).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "30");
    assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=2;w=60");
    let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["violated-policies"], serde_json::json!(["default"]));
    assert_eq!(
        json["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    // Another key has its own quota; no key at all is a 400.
    assert_eq!(
        app.clone().oneshot(req(Some("b"))).await.unwrap().status(),
        200
    );
    assert_eq!(app.clone().oneshot(req(None)).await.unwrap().status(), 400);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(app.oneshot(req(Some("a"))).await.unwrap().status(), 200);
}
