//! A real HTTP server on 127.0.0.1:0 that fails twice then succeeds, called through
//! hyper-util's legacy client wrapped in the retry layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::put;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_retry::{Backoff, ReplayBody, RetryLayer};
use tower::{Layer, ServiceExt};

async fn flaky(State(count): State<Arc<AtomicU32>>, body: Bytes) -> (StatusCode, Bytes) {
    let n = count.fetch_add(1, Ordering::SeqCst);
    if n < 2 {
        (StatusCode::SERVICE_UNAVAILABLE, Bytes::new())
    } else {
        (StatusCode::OK, body)
    }
}

#[tokio::test]
async fn hyper_util_client_retries_a_flaky_server() {
    let count = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/doc", put(flaky).post(flaky))
        .with_state(count.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc = RetryLayer::new()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .layer(client);
    let req = Request::put(format!("http://{addr}/doc"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        &b"payload"[..]
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // A POST without Idempotency-Key is sent once.
    count.store(0, Ordering::SeqCst);
    let app_post = Request::post(format!("http://{addr}/doc"))
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    let res = svc.clone().oneshot(app_post).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // Connection refused is a transport error: retried, then returned.
    server.abort();
    let _ = server.await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let req = Request::get(format!("http://{dead_addr}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert!(
        err.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect),
        "{err}"
    );
}
