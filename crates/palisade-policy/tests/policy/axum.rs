//! An axum `Router` under a policy set, served by `axum::serve` as it is (no `map_response`
//! boxing the body): route templates match as axum's do, unmatched paths take the fallback.

use axum::Router;
use axum::ServiceExt;
use axum::routing::get;
use palisade_policy::{PolicyHandle, PolicySet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::Layer;

async fn status(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_router_under_policies_is_served_by_axum_serve_as_it_is() {
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/search", get(|| async { "results" }));
    let set = PolicySet::from_toml(
        r#"
        [[routes]]
        match = { path = "/orders/{id}" }
        rate_limit = { quotas = [{ limit = 1, window = "1h" }] }
        [fallback]
        rate_limit = { quotas = [{ limit = 2, window = "1h" }] }
        "#,
    )
    .unwrap();
    let svc = PolicyHandle::new(set).layer().layer(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            ServiceExt::<axum::extract::Request>::into_make_service(svc),
        )
        .await
    });
    assert_eq!(status(addr, "/orders/1").await, "HTTP/1.1 200 OK");
    assert_eq!(
        status(addr, "/orders/2").await,
        "HTTP/1.1 429 Too Many Requests",
        "one bucket for the template"
    );
    // Everything else shares the fallback's 2 per hour, including axum's own 404s.
    assert_eq!(status(addr, "/search").await, "HTTP/1.1 200 OK");
    assert_eq!(status(addr, "/missing").await, "HTTP/1.1 404 Not Found");
    assert_eq!(
        status(addr, "/search").await,
        "HTTP/1.1 429 Too Many Requests"
    );
    server.abort();
}
