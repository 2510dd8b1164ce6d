//! Issue #15 item 1: effects happen once, whatever the caller does. A client that disconnects
//! while its keyed POST is being handled (on a real axum server), or a hedging client whose
//! copy meets the original in flight, never makes the handler run twice.
#![cfg(all(feature = "idempotency", feature = "axum"))]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderName;
use axum::routing::post;
use palisade::ServiceBuilderExt;
use palisade::idempotency::{IdempotencyLayer, MemoryStore};
use palisade::key::HeaderKey;
use tokio::io::AsyncWriteExt;
use tower::ServiceBuilder;

/// Sets `dropped` if the request's future is dropped before it completes.
struct DropProbe {
    dropped: Arc<AtomicBool>,
    done: bool,
}

impl DropProbe {
    fn disarm(mut self) {
        self.done = true;
    }
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if !self.done {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn client_disconnect_mid_handler_executes_once_and_retry_replays() {
    let calls = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let (c, f, g) = (calls.clone(), finished.clone(), gate.clone());
    let pay = post(move || {
        let (c, f, g) = (c.clone(), f.clone(), g.clone());
        async move {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            g.acquire().await.unwrap().forget();
            f.fetch_add(1, Ordering::SeqCst);
            (axum::http::StatusCode::CREATED, format!("charged {n}"))
        }
    });
    let d = dropped.clone();
    let stack = ServiceBuilder::new()
        .map_future(move |fut| {
            let probe = DropProbe {
                dropped: d.clone(),
                done: false,
            };
            async move {
                let out = fut.await;
                probe.disarm();
                out
            }
        })
        .handle_rejections()
        .idempotency_with(
            IdempotencyLayer::new(MemoryStore::new())
                .scope(HeaderKey::new(HeaderName::from_static("x-api-key"))),
        );
    let app = Router::new().route("/pay", pay.route_layer(stack));
    let base = support::serve(app).await;
    let addr = base.trim_start_matches("http://").to_owned();

    // A raw client sends the POST and hangs up while the handler runs.
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = "amount=10";
    let req = format!(
        "POST /pay HTTP/1.1\r\nhost: {addr}\r\nx-api-key: customer-1\r\nidempotency-key: \"order-1\"\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(sock);
    for _ in 0..200 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the server dropped the request future"
    );

    // Bounded, so that a server re-running the (gated) handler fails here instead of hanging.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let retry = || {
        client
            .post(format!("{base}/pay"))
            .header("x-api-key", "customer-1")
            .header("idempotency-key", "\"order-1\"")
            .body(body)
            .send()
    };
    // Still running: the retry is told so and does not charge again.
    let during = retry().await.unwrap();
    assert_eq!(during.status(), 409);
    gate.add_permits(1);
    while finished.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut replay = retry().await.unwrap();
    for _ in 0..100 {
        if replay.status() != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        replay = retry().await.unwrap();
    }
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), "charged 1");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "charged once");
}

/// A hedging client in front of the idempotency layer: the hedge's copy meets the original
/// in flight and gets the 409 `idempotency-conflict` problem, which the hedge does not take
/// as final; the caller gets the original's answer and the handler runs once.
#[cfg(feature = "retry")]
#[tokio::test(start_paused = true)]
async fn hedging_in_front_executes_the_handler_once() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use palisade::retry::HedgeLayer;
    use palisade_test::ScriptedService;
    use palisade_test::scripted::{ScriptedResponse, delay, respond};
    use tower::{Layer, ServiceExt};

    let sent = Arc::new(AtomicUsize::new(0));
    // Every charge takes 200 ms and answers 201 "charge <n>".
    let handler =
        ScriptedService::otherwise(delay(Duration::from_millis(200)).then(respond(|seen| {
            let mut res =
                ScriptedResponse::new(Full::new(Bytes::from(format!("charge {}", seen.index + 1))));
            *res.status_mut() = http::StatusCode::CREATED;
            Ok(res)
        })));
    let server = ServiceBuilder::new()
        .handle_rejections()
        .layer(
            IdempotencyLayer::new(MemoryStore::new())
                .scope(HeaderKey::new(HeaderName::from_static("x-api-key"))),
        )
        .service(handler.clone());
    let s = sent.clone();
    let counted = tower::util::MapRequestLayer::new(move |req: http::Request<Full<Bytes>>| {
        s.fetch_add(1, Ordering::SeqCst);
        req
    })
    .layer(server);
    let client = HedgeLayer::new(Duration::from_millis(50))
        .hedge_unsafe_methods(true)
        .max_hedged(1)
        .layer(counted);
    let pay = || {
        http::Request::post("/pay")
            .header("idempotency-key", "\"order-1\"")
            .header("x-api-key", "tenant-a")
            .body(Full::new(Bytes::from_static(b"amount=10")))
            .unwrap()
    };

    let start = tokio::time::Instant::now();
    let res = client.clone().oneshot(pay()).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "charge 1"
    );
    assert_eq!(sent.load(Ordering::SeqCst), 2, "the hedge sent its copy");
    assert_eq!(handler.calls(), 1, "the copy never reached the handler");

    // A later retry with the same key replays the stored response.
    let again = client.oneshot(pay()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.into_body().collect().await.unwrap().to_bytes(),
        "charge 1"
    );
    assert_eq!(handler.calls(), 1);
}
