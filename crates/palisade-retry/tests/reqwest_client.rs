//! A real server on 127.0.0.1:0 that fails twice then succeeds, through `reqwest::Client`
//! wrapped in the retry layer.
#![cfg(feature = "reqwest")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::put;
use http::StatusCode;
use palisade_retry::{Backoff, RetryEvent, RetryLayer};
use palisade_test::EventRecorder;
use tower::{Layer, ServiceExt};

async fn flaky(State(count): State<Arc<AtomicU32>>, body: Bytes) -> (StatusCode, Bytes) {
    let n = count.fetch_add(1, Ordering::SeqCst);
    if n < 2 {
        (StatusCode::BAD_GATEWAY, Bytes::new())
    } else {
        (StatusCode::OK, body)
    }
}

#[tokio::test]
async fn reqwest_client_retries_a_flaky_server() {
    let count = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/doc", put(flaky).post(flaky))
        .with_state(count.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let events = EventRecorder::new();
    let client = reqwest::Client::new();
    let svc = RetryLayer::new()
        .max_attempts(3)
        .body_limit(16)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .on_event(events.on())
        .layer(client.clone());

    let req = client
        .put(format!("http://{addr}/doc"))
        .body("payload")
        .build()
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), &b"payload"[..]);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // POST without Idempotency-Key: once.
    count.store(0, Ordering::SeqCst);
    let req = client
        .post(format!("http://{addr}/doc"))
        .body("x")
        .build()
        .unwrap();
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 502);
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // POST with Idempotency-Key: retried.
    count.store(0, Ordering::SeqCst);
    let req = client
        .post(format!("http://{addr}/doc"))
        .header("idempotency-key", "\"k\"")
        .body("x")
        .build()
        .unwrap();
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 200);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // A body over the limit: sent once, event emitted.
    count.store(0, Ordering::SeqCst);
    events.clear();
    let req = client
        .put(format!("http://{addr}/doc"))
        .body(vec![b'z'; 17])
        .build()
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 502);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(
        events.events::<RetryEvent>(),
        [RetryEvent::BodyTooLarge {
            instance: "retry".into(),
            limit: 16
        }]
    );
}

/// The adaptive throttle around `reqwest::Client`: a real server refusing everything with
/// 503 sees only a handful of the 200 requests; the rest fail locally with `Throttled`.
#[tokio::test]
async fn reqwest_client_is_throttled_by_a_refusing_server() {
    use palisade_core::Throttled;
    use palisade_retry::AdaptiveThrottleLayer;

    let count = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route(
            "/busy",
            axum::routing::get(|State(count): State<Arc<AtomicU32>>| async move {
                count.fetch_add(1, Ordering::SeqCst);
                StatusCode::SERVICE_UNAVAILABLE
            }),
        )
        .with_state(count.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let svc = AdaptiveThrottleLayer::new().seed(11).layer(client.clone());
    let mut shed = 0_u32;
    for _ in 0..200 {
        let req = client.get(format!("http://{addr}/busy")).build().unwrap();
        match svc.clone().oneshot(req).await {
            Ok(res) => assert_eq!(res.status(), 503),
            Err(e) => {
                assert!(e.is::<Throttled>(), "{e}");
                shed += 1;
            }
        }
    }
    let sent = count.load(Ordering::SeqCst);
    assert_eq!(sent + shed, 200);
    // With no accepts the n-th request goes out with probability 1/n: about ln(200) ≈ 6.
    assert!(sent < 20, "sent {sent}");
}
