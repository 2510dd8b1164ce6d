//! A client retries a payment after losing the response; the server charges once.
//!
//! `cargo run -p palisade-idempotency --example basic`

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_core::HandleRejectionsLayer;
use palisade_idempotency::{IdempotencyLayer, MemoryStore, body::RequestBody};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let charges = Arc::new(AtomicU32::new(0));
    let counter = charges.clone();
    let payments = service_fn(move |req: Request<RequestBody<Full<Bytes>>>| {
        let counter = counter.clone();
        async move {
            let amount = req.into_body().collect().await?.to_bytes();
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(
                "{{\"charge\":\"ch_{n}\",\"amount\":{}}}",
                String::from_utf8_lossy(&amount)
            );
            Ok::<_, Infallible>(
                Response::builder()
                    .status(201)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }
    });
    let mut server = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(IdempotencyLayer::new(MemoryStore::new()).require_key(true))
        .service(payments);

    let pay = || {
        Request::post("/payments")
            .header(
                "idempotency-key",
                "\"9f1c2e4a-7b1d-4c55-8a31-2f5b0c1d9e77\"",
            )
            .body(Full::new(Bytes::from_static(b"1000")))
            .unwrap()
    };
    // Attempt 1: the server charges, but the response is lost on the way back.
    let lost = server.ready().await.unwrap().call(pay()).await.unwrap();
    drop(lost);
    println!("attempt 1: response lost");
    // Attempt 2: the client retries with the same key and gets the original answer.
    let res = server.ready().await.unwrap().call(pay()).await.unwrap();
    let replayed = res.headers().get("idempotent-replayed").cloned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    println!(
        "attempt 2: replayed={replayed:?} body={}",
        String::from_utf8_lossy(&body)
    );
    // Without a key the route refuses the request (400 problem+json).
    let no_key = Request::post("/payments")
        .body(Full::new(Bytes::from_static(b"1000")))
        .unwrap();
    let res = server.oneshot(no_key).await.unwrap();
    println!("without a key: {}", res.status());
    assert_eq!(charges.load(Ordering::SeqCst), 1);
    println!("charged {} time(s)", charges.load(Ordering::SeqCst));
}
