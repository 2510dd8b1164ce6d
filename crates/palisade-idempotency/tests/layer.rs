//! The server layer against SPECS §1 vectors T1–T12 and the issue's acceptance list.
#![allow(clippy::many_single_char_names)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use palisade_core::HandleRejectionsLayer;
use palisade_core::key::{KeyError, key_fn};
use palisade_idempotency::{
    Begin, IdempotencyEvent, IdempotencyLayer, MemoryStore, Store, StoreError, StoreFuture,
    StoredResponse,
};
use palisade_test::EventRecorder;
use support::{Answer, Handler, is_problem, post, send, with_tenant};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

type Svc = tower::util::BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

/// HandleRejections → Idempotency → handler, with bodies collected into `Full` so tests can
/// name one type.
fn stack<St, K>(layer: IdempotencyLayer<St, K>, h: &Handler) -> Svc
where
    IdempotencyLayer<St, K>: Layer<Handler>,
    <IdempotencyLayer<St, K> as Layer<Handler>>::Service: Service<
            Request<Full<Bytes>>,
            Response = Response<palisade_idempotency::body::ResponseBody<Full<Bytes>>>,
            Error = palisade_core::BoxError,
        > + Clone
        + Send
        + 'static,
    <<IdempotencyLayer<St, K> as Layer<Handler>>::Service as Service<Request<Full<Bytes>>>>::Future:
        Send + 'static,
{
    use http_body_util::BodyExt;
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(layer)
        .service(h.clone());
    tower::util::BoxCloneService::new(svc.and_then(
        |res: Response<
            palisade_core::RejectionBody<palisade_idempotency::body::ResponseBody<Full<Bytes>>>,
        >| async move {
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .map_or_else(|_| Bytes::new(), http_body_util::Collected::to_bytes);
            Ok(Response::from_parts(parts, Full::new(body)))
        },
    ))
}

fn tenant_layer(
    store: MemoryStore,
) -> IdempotencyLayer<
    MemoryStore,
    impl palisade_core::KeyExtractor<Request<Full<Bytes>>, Key = String>,
> {
    IdempotencyLayer::new(store).scope(key_fn(|req: &Request<Full<Bytes>>| {
        req.headers()
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(KeyError::Missing {
                what: "x-tenant header",
            })
    }))
}

fn events(layer: IdempotencyLayer<MemoryStore>) -> (IdempotencyLayer<MemoryStore>, EventRecorder) {
    let log = EventRecorder::new();
    (layer.on_event(log.on()), log)
}

fn original(a: &Answer) -> bool {
    a.headers.get("idempotent-replayed").is_none() && a.headers.contains_key("x-request-n")
}

fn replayed(a: &Answer) -> bool {
    a.headers
        .get("idempotent-replayed")
        .map(http::HeaderValue::as_bytes)
        == Some(b"true")
}

async fn wait_calls(h: &Handler, n: usize) {
    while h.calls() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn t1_first_request_executes_and_stores() {
    let h = Handler::new();
    let store = MemoryStore::new();
    let (layer, log) = events(IdempotencyLayer::new(store.clone()));
    let mut svc = stack(layer, &h);
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.body, r#"{"id":1,"body":"A"}"#);
    assert!(original(&a));
    assert_eq!(h.calls(), 1);
    assert_eq!(store.len(), 1, "entry k1 stored");
    assert_eq!(
        *log.events::<IdempotencyEvent>(),
        vec![IdempotencyEvent::Executed {
            instance: "idempotency".into(),
            status: StatusCode::CREATED,
            stored: true
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn t2_replay_is_byte_identical() {
    let h = Handler::new();
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()));
    let mut svc = stack(layer, &h);
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    let b = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(h.calls(), 1);
    assert_eq!(b.status, a.status);
    assert_eq!(b.body, a.body);
    assert!(replayed(&b));
    assert_eq!(b.headers["content-type"], a.headers["content-type"]);
    // Only allowlisted headers are stored; the replay adds exactly the marker.
    assert!(!b.headers.contains_key("x-request-n"));
    let mut names: Vec<_> = b.headers.keys().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["content-type", "idempotent-replayed"]);
    // A third replay is identical to the second.
    let c = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(c, b);
    assert_eq!(
        log.events::<IdempotencyEvent>()[1],
        IdempotencyEvent::Replayed {
            instance: "idempotency".into(),
            status: StatusCode::CREATED
        }
    );
}

#[tokio::test(start_paused = true)]
async fn t3_in_flight_is_409() {
    let h = Handler::new();
    h.0.gated.store(true, Ordering::SeqCst);
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()));
    let svc = stack(layer, &h);
    let mut first = svc.clone();
    let t = tokio::spawn(async move { send(&mut first, post(Some("\"k1\""), "A")).await });
    wait_calls(&h, 1).await;
    let mut second = svc.clone();
    let b = send(&mut second, post(Some("\"k1\""), "A")).await;
    assert_eq!(b.status, StatusCode::CONFLICT);
    assert!(is_problem(&b));
    assert_eq!(h.calls(), 1);
    h.0.gate.add_permits(1);
    let a = t.await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(
        log.events::<IdempotencyEvent>()
            .contains(&IdempotencyEvent::Conflict {
                instance: "idempotency".into()
            })
    );
    // The 409 was not stored: the next retry replays the original.
    let c = send(&mut second, post(Some("\"k1\""), "A")).await;
    assert!(replayed(&c));
    assert_eq!(c.body, a.body);
}

#[tokio::test(start_paused = true)]
async fn t4_different_payload_is_422() {
    let h = Handler::new();
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()));
    let mut svc = stack(layer, &h);
    send(&mut svc, post(Some("\"k1\""), "A")).await;
    let b = send(&mut svc, post(Some("\"k1\""), "B")).await;
    assert_eq!(b.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(is_problem(&b));
    assert_eq!(h.calls(), 1);
    assert_eq!(
        *log.events::<IdempotencyEvent>().last().unwrap(),
        IdempotencyEvent::Mismatch {
            instance: "idempotency".into()
        }
    );
    // Path and query are part of the fingerprint too.
    let other_path = Request::post("/orders?x=2")
        .header("idempotency-key", "\"k1\"")
        .header("x-api-key", support::API_KEY)
        .body(Full::new(Bytes::from_static(b"A")))
        .unwrap();
    assert_eq!(send(&mut svc, other_path).await.status, 422);
    // Mismatch while in flight is 422 as well.
    h.0.gated.store(true, Ordering::SeqCst);
    let mut first = svc.clone();
    let t = tokio::spawn(async move { send(&mut first, post(Some("\"k2\""), "A")).await });
    wait_calls(&h, 2).await;
    assert_eq!(send(&mut svc, post(Some("\"k2\""), "B")).await.status, 422);
    h.0.gate.add_permits(1);
    assert_eq!(t.await.unwrap().status, 201);
}

#[tokio::test(start_paused = true)]
async fn t5_missing_key_on_required_route_is_400() {
    let h = Handler::new();
    let mut svc = stack(
        IdempotencyLayer::new(MemoryStore::new()).require_key(true),
        &h,
    );
    let a = send(&mut svc, post(None, "A")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(is_problem(&a));
    assert!(String::from_utf8_lossy(&a.body).contains("Idempotency-Key is missing"));
    assert_eq!(h.calls(), 0);
    // Optional route (default): passes through, nothing stored, runs every time.
    let store = MemoryStore::new();
    let mut svc = stack(IdempotencyLayer::new(store.clone()), &h);
    assert_eq!(send(&mut svc, post(None, "A")).await.status, 201);
    assert_eq!(send(&mut svc, post(None, "A")).await.status, 201);
    assert_eq!(h.calls(), 2);
    assert!(store.is_empty());
}

#[tokio::test(start_paused = true)]
async fn t6_unterminated_string_is_400() {
    let h = Handler::new();
    let mut svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    for bad in ["\"k1", "\"\"", "\"k1\" junk", "\"a\\n\""] {
        let a = send(&mut svc, post(Some(bad), "A")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(is_problem(&a));
    }
    let long = format!("\"{}\"", "a".repeat(256));
    let req = Request::post("/orders")
        .header("idempotency-key", long)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&mut svc, req).await.status, 400);
    assert_eq!(h.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn t7_repeated_header_is_400() {
    let h = Handler::new();
    let mut svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    let req = Request::post("/orders")
        .header("idempotency-key", "\"a\"")
        .header("idempotency-key", "\"b\"")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = send(&mut svc, req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(is_problem(&a));
    assert_eq!(h.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn t8_get_passes_through() {
    let h = Handler::new();
    let store = MemoryStore::new();
    let mut svc = stack(IdempotencyLayer::new(store.clone()), &h);
    for _ in 0..2 {
        let req = Request::get("/orders")
            .header("idempotency-key", "\"k9\"")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let a = send(&mut svc, req).await;
        assert_eq!(a.status, 201);
        assert!(original(&a));
    }
    assert_eq!(h.calls(), 2);
    assert!(store.is_empty(), "nothing stored");
}

#[tokio::test(start_paused = true)]
async fn t9_server_error_is_replayed_by_default() {
    let h = Handler::new();
    h.0.status.store(500, Ordering::SeqCst);
    let mut svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    let a = send(&mut svc, post(Some("\"k2\""), "A")).await;
    h.0.status.store(201, Ordering::SeqCst);
    let b = send(&mut svc, post(Some("\"k2\""), "A")).await;
    assert_eq!(a.status, 500);
    assert_eq!(b.status, 500);
    assert_eq!(b.body, a.body);
    assert!(replayed(&b));
    assert_eq!(h.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn t9_server_error_reruns_when_not_stored() {
    let h = Handler::new();
    h.0.status.store(500, Ordering::SeqCst);
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()).store_server_errors(false));
    let mut svc = stack(layer, &h);
    assert_eq!(send(&mut svc, post(Some("\"k2\""), "A")).await.status, 500);
    h.0.status.store(201, Ordering::SeqCst);
    let b = send(&mut svc, post(Some("\"k2\""), "A")).await;
    assert_eq!(b.status, 201);
    assert!(original(&b));
    assert_eq!(h.calls(), 2);
    assert_eq!(
        log.events::<IdempotencyEvent>()[0],
        IdempotencyEvent::Executed {
            instance: "idempotency".into(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
            stored: false
        }
    );
    // 4xx from the handler is stored either way.
    h.0.status.store(404, Ordering::SeqCst);
    send(&mut svc, post(Some("\"k3\""), "A")).await;
    assert!(replayed(&send(&mut svc, post(Some("\"k3\""), "A")).await));
    assert_eq!(h.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn t10_tenants_are_isolated() {
    let h = Handler::new();
    let mut svc = stack(tenant_layer(MemoryStore::new()), &h);
    let p1 = send(&mut svc, with_tenant(post(Some("\"k1\""), "A"), "P1")).await;
    let p2 = send(&mut svc, with_tenant(post(Some("\"k1\""), "A"), "P2")).await;
    assert!(original(&p1) && original(&p2));
    assert_eq!(h.calls(), 2);
    assert_ne!(p1.body, p2.body);
    // Each tenant replays its own entry; a different payload for P2 does not clash with P1.
    let again = send(&mut svc, with_tenant(post(Some("\"k1\""), "A"), "P1")).await;
    assert_eq!(again.body, p1.body);
    assert!(replayed(&again));
    // No tenant → KeyError 400 before the store.
    assert_eq!(send(&mut svc, post(Some("\"k1\""), "A")).await.status, 400);
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn t11_key_expires_after_ttl() {
    let h = Handler::new();
    let mut svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    send(&mut svc, post(Some("\"k1\""), "A")).await;
    tokio::time::advance(Duration::from_secs(24 * 3600 - 1)).await;
    assert!(replayed(&send(&mut svc, post(Some("\"k1\""), "A")).await));
    tokio::time::advance(Duration::from_secs(2)).await; // +24h+1s
    let c = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(original(&c));
    assert_eq!(h.calls(), 2);
    // Expired key with another payload is simply new as well.
    tokio::time::advance(Duration::from_secs(24 * 3600 + 1)).await;
    assert!(original(&send(&mut svc, post(Some("\"k1\""), "B")).await));
}

#[tokio::test(start_paused = true)]
async fn t12_bare_token_lenient_and_strict() {
    let h = Handler::new();
    let mut lenient = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    let a = send(&mut lenient, post(Some("k1"), "A")).await;
    let b = send(&mut lenient, post(Some("\"k1\""), "A")).await;
    assert!(original(&a));
    assert!(replayed(&b), "bare k1 is the same key as \"k1\"");
    let mut strict = stack(IdempotencyLayer::new(MemoryStore::new()).strict(true), &h);
    let c = send(&mut strict, post(Some("k1"), "A")).await;
    assert_eq!(c.status, 400);
    assert!(is_problem(&c));
    assert_eq!(h.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_requests_execute_once() {
    let h = Handler::new();
    h.0.gated.store(true, Ordering::SeqCst);
    let svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..1000 {
        let mut svc = svc.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let a = send(&mut svc, post(Some("\"same\""), "pay 10")).await;
            tx.send(a).unwrap();
        });
    }
    let mut answers = Vec::new();
    for _ in 0..500 {
        let a = rx.recv().await.unwrap();
        assert_eq!(
            a.status,
            StatusCode::CONFLICT,
            "nothing completes while the handler is gated"
        );
        answers.push(a);
    }
    h.0.gate.add_permits(1);
    for _ in 0..500 {
        answers.push(rx.recv().await.unwrap());
    }
    assert_eq!(h.calls(), 1);
    let originals: Vec<_> = answers.iter().filter(|a| original(a)).collect();
    assert_eq!(originals.len(), 1);
    let first = originals[0];
    assert_eq!(first.status, 201);
    for a in &answers {
        if original(a) {
            continue;
        }
        if a.status == StatusCode::CONFLICT {
            assert!(is_problem(a));
        } else {
            assert!(replayed(a));
            assert_eq!((a.status, &a.body), (first.status, &first.body));
            assert_eq!(a.headers["content-type"], first.headers["content-type"]);
        }
    }
    // Once the original is done, every further request is an identical replay.
    for _ in 0..10 {
        let mut s = svc.clone();
        let again = send(&mut s, post(Some("\"same\""), "pay 10")).await;
        assert!(replayed(&again));
        assert_eq!((again.status, &again.body), (first.status, &first.body));
    }
    assert_eq!(h.calls(), 1);
}

/// Issue #15 item 1: dropping the caller's future once the handler started (client gone,
/// outer timeout, a hedge that lost) neither stops the handler nor releases the key; the
/// retry gets the stored response. (This test asserted the opposite before.)
#[tokio::test(start_paused = true)]
async fn dropped_future_keeps_executing_and_retry_replays() {
    let h = Handler::new();
    h.0.gated.store(true, Ordering::SeqCst);
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()));
    let mut svc = stack(layer, &h);
    {
        let fut = svc.ready().await.unwrap().call(post(Some("\"k1\""), "A"));
        let mut fut = Box::pin(fut);
        assert!(futures_poll_once(fut.as_mut()).await.is_none());
        wait_calls(&h, 1).await;
    } // dropped mid-handler
    // Still running: a retry now is told so, and does not run the handler (bounded, so that
    // a layer which re-runs the gated handler fails here instead of hanging).
    let b = tokio::time::timeout(
        Duration::from_secs(5),
        send(&mut svc, post(Some("\"k1\""), "A")),
    )
    .await
    .expect("the retry ran the handler again");
    assert_eq!(b.status, StatusCode::CONFLICT);
    assert_eq!(h.calls(), 1);
    h.0.gate.add_permits(1);
    wait_stored(&log).await;
    let c = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(replayed(&c));
    assert_eq!(c.status, StatusCode::CREATED);
    assert_eq!(c.body, r#"{"id":1,"body":"A"}"#);
    assert_eq!(h.calls(), 1, "the handler ran once");
}

/// Waits until the detached execution has stored its response.
async fn wait_stored(log: &EventRecorder) {
    for _ in 0..10_000 {
        if log
            .events::<IdempotencyEvent>()
            .iter()
            .any(|e| matches!(e, IdempotencyEvent::Executed { .. }))
        {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the execution never finished");
}

/// HandleRejections → Timeout → Idempotency → handler: the shipped examples' order.
fn timeout_stack(
    timeout: palisade_timeout::TimeoutLayer,
    layer: IdempotencyLayer<MemoryStore>,
    h: &Handler,
) -> Svc {
    use http_body_util::BodyExt;
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(timeout)
        .layer(layer)
        .service(h.clone());
    tower::util::BoxCloneService::new(svc.and_then(
        |res: Response<
            palisade_core::RejectionBody<palisade_idempotency::body::ResponseBody<Full<Bytes>>>,
        >| async move {
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .map_or_else(|_| Bytes::new(), http_body_util::Collected::to_bytes);
            Ok(Response::from_parts(parts, Full::new(body)))
        },
    ))
}

/// An outer timeout firing mid-handler: 504 to the caller, the handler finishes and its
/// result is stored; the retry replays it.
#[tokio::test(start_paused = true)]
async fn outer_timeout_does_not_rerun_the_handler() {
    let h = Handler::new();
    h.0.delay_ms.store(5_000, Ordering::SeqCst);
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()));
    let mut svc = timeout_stack(
        palisade_timeout::TimeoutLayer::new(Duration::from_secs(1)),
        layer,
        &h,
    );
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    let b = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(b.status, StatusCode::CONFLICT, "still running");
    tokio::time::sleep(Duration::from_secs(5)).await;
    wait_stored(&log).await;
    h.0.delay_ms.store(0, Ordering::SeqCst);
    let c = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(replayed(&c));
    assert_eq!(c.status, StatusCode::CREATED);
    assert_eq!(c.body, r#"{"id":1,"body":"A"}"#);
    assert_eq!(h.calls(), 1);
}

/// Five POSTs with one key and `grpc-timeout: 10m` (10 ms), which the timeout layer
/// honours: the handler is charged once, not five times.
#[tokio::test(start_paused = true)]
async fn short_grpc_timeout_charges_once() {
    let h = Handler::new();
    h.0.delay_ms.store(100, Ordering::SeqCst);
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()));
    let mut svc = timeout_stack(
        palisade_timeout::TimeoutLayer::new(Duration::from_secs(30)),
        layer,
        &h,
    );
    let charge = || {
        let mut r = post(Some("\"k1\""), "A");
        r.headers_mut()
            .insert("grpc-timeout", http::HeaderValue::from_static("10m"));
        r
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&mut svc, charge()).await.status);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_stored(&log).await;
    let last = send(&mut svc, charge()).await;
    assert!(replayed(&last), "{statuses:?}");
    assert_eq!(last.status, StatusCode::CREATED);
    assert_eq!(statuses[0], StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(h.calls(), 1, "charged once, answers {statuses:?}");
}

/// A hand-rolled hedge in front: the original attempt is in flight, the hedge gets the 409
/// (whose problem type says "in flight", not "final"), and the hedging client drops the
/// original. The execution continues and the next retry replays it.
#[tokio::test(start_paused = true)]
async fn hedge_in_front_executes_once() {
    let h = Handler::new();
    h.0.gated.store(true, Ordering::SeqCst);
    let (layer, log) = events(IdempotencyLayer::new(MemoryStore::new()));
    let svc = stack(layer, &h);
    let mut original_svc = svc.clone();
    let original =
        tokio::spawn(async move { send(&mut original_svc, post(Some("\"k1\""), "A")).await });
    wait_calls(&h, 1).await;
    let mut hedge_svc = svc.clone();
    let hedge = send(&mut hedge_svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(hedge.status, StatusCode::CONFLICT);
    let problem: serde_json::Value = serde_json::from_slice(&hedge.body).unwrap();
    assert_eq!(problem["type"], "urn:palisade:problem:idempotency-conflict");
    // The hedging client cancels the other attempt.
    original.abort();
    assert!(original.await.unwrap_err().is_cancelled());
    h.0.gate.add_permits(1);
    wait_stored(&log).await;
    let retry = send(&mut hedge_svc, post(Some("\"k1\""), "A")).await;
    assert!(replayed(&retry));
    assert_eq!(retry.body, r#"{"id":1,"body":"A"}"#);
    assert_eq!(h.calls(), 1);
}

async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(move |cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn handler_error_releases_the_lock() {
    let h = Handler::new();
    h.0.fail_next.store(true, Ordering::SeqCst);
    let mut svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    assert_eq!(send(&mut svc, post(Some("\"k1\""), "A")).await.status, 500);
    let b = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(original(&b));
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn crashed_holder_lease_expires_then_one_execution() {
    let h = Handler::new();
    h.0.gated.store(true, Ordering::SeqCst);
    let store = MemoryStore::new();
    // A crashed instance: its handler never finishes and nothing renews its lease.
    let mut crashed = stack(
        IdempotencyLayer::new(store.clone())
            .lease(Duration::from_secs(30))
            .renew_lease(false),
        &h,
    );
    let mut fut = Box::pin(
        crashed
            .ready()
            .await
            .unwrap()
            .call(post(Some("\"k1\""), "A")),
    );
    assert!(futures_poll_once(fut.as_mut()).await.is_none());
    wait_calls(&h, 1).await;
    std::mem::forget(fut);
    h.0.gated.store(false, Ordering::SeqCst);
    let (layer, log) = events(IdempotencyLayer::new(store).lease(Duration::from_secs(30)));
    let mut svc = stack(layer, &h);
    assert_eq!(send(&mut svc, post(Some("\"k1\""), "A")).await.status, 409);
    tokio::time::advance(Duration::from_secs(30)).await;
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(original(&a));
    let b = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(replayed(&b));
    assert_eq!(h.calls(), 2, "the crashed attempt and exactly one more");
    assert!(
        log.events::<IdempotencyEvent>()
            .contains(&IdempotencyEvent::LockExpired {
                instance: "idempotency".into(),
                late_finisher: false
            })
    );
}

#[tokio::test(start_paused = true)]
async fn late_finisher_cannot_overwrite_newer_result() {
    let h = Handler::new();
    // A stalled instance: its heartbeat does not get through (renewal off).
    let (layer, log) = events(
        IdempotencyLayer::new(MemoryStore::new())
            .lease(Duration::from_secs(10))
            .renew_lease(false),
    );
    let svc = stack(layer, &h);
    h.0.delay_ms.store(60_000, Ordering::SeqCst); // the first run hangs past its lease
    let mut slow = svc.clone();
    let t = tokio::spawn(async move { send(&mut slow, post(Some("\"k1\""), "A")).await });
    wait_calls(&h, 1).await;
    h.0.delay_ms.store(0, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(11)).await;
    let mut fast = svc.clone();
    let second = send(&mut fast, post(Some("\"k1\""), "A")).await;
    assert!(original(&second));
    assert_eq!(second.body, r#"{"id":2,"body":"A"}"#);
    let late = t.await.unwrap(); // finishes after the takeover
    assert_eq!(late.body, r#"{"id":1,"body":"A"}"#);
    let replay = send(&mut fast, post(Some("\"k1\""), "A")).await;
    assert_eq!(replay.body, second.body, "the newer result stays");
    let log = log.events::<IdempotencyEvent>();
    assert!(log.contains(&IdempotencyEvent::LockExpired {
        instance: "idempotency".into(),
        late_finisher: false
    }));
    assert!(log.contains(&IdempotencyEvent::LockExpired {
        instance: "idempotency".into(),
        late_finisher: true
    }));
}

#[tokio::test(start_paused = true)]
async fn lease_is_renewed_while_a_slow_handler_runs() {
    let h = Handler::new();
    h.0.delay_ms.store(120_000, Ordering::SeqCst); // 12 leases long
    let svc = stack(
        IdempotencyLayer::new(MemoryStore::new()).lease(Duration::from_secs(10)),
        &h,
    );
    let mut slow = svc.clone();
    let t = tokio::spawn(async move { send(&mut slow, post(Some("\"k1\""), "A")).await });
    wait_calls(&h, 1).await;
    h.0.delay_ms.store(0, Ordering::SeqCst);
    let mut other = svc.clone();
    for second in 1..120 {
        tokio::time::advance(Duration::from_secs(1)).await;
        if second % 10 == 0 {
            let status = send(&mut other, post(Some("\"k1\""), "A")).await.status;
            assert_eq!(status, 409, "at {second}s");
        }
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    let a = t.await.unwrap();
    assert!(original(&a));
    assert!(replayed(&send(&mut other, post(Some("\"k1\""), "A")).await));
    assert_eq!(h.calls(), 1, "never run twice");
}

#[tokio::test(start_paused = true)]
async fn wait_mode_replays_after_completion() {
    let h = Handler::new();
    h.0.delay_ms.store(500, Ordering::SeqCst);
    let svc = stack(
        IdempotencyLayer::new(MemoryStore::new()).wait_in_flight(Duration::from_secs(2)),
        &h,
    );
    let mut a_svc = svc.clone();
    let t = tokio::spawn(async move { send(&mut a_svc, post(Some("\"k1\""), "A")).await });
    wait_calls(&h, 1).await;
    let mut b_svc = svc.clone();
    let b = send(&mut b_svc, post(Some("\"k1\""), "A")).await;
    let a = t.await.unwrap();
    assert!(replayed(&b));
    assert_eq!(b.body, a.body);
    assert_eq!(h.calls(), 1);
    // Bounded: a handler slower than the wait still gets 409.
    h.0.delay_ms.store(5_000, Ordering::SeqCst);
    let mut c_svc = svc.clone();
    let t = tokio::spawn(async move { send(&mut c_svc, post(Some("\"k2\""), "A")).await });
    wait_calls(&h, 2).await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        send(&mut b_svc, post(Some("\"k2\""), "A")).await.status,
        409
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    t.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn oversized_bodies() {
    let h = Handler::new();
    let mut svc = stack(
        IdempotencyLayer::new(MemoryStore::new())
            .max_request_body(4)
            .max_response_body(100),
        &h,
    );
    // Request over the limit: 413, handler not run.
    let a = send(&mut svc, post(Some("\"k1\""), "12345")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(is_problem(&a));
    assert_eq!(h.calls(), 0);
    // Response over the limit: sent in full, not stored, so a retry runs again.
    h.0.body_size.store(1000, Ordering::SeqCst);
    let b = send(&mut svc, post(Some("\"k1\""), "1234")).await;
    assert_eq!(b.body.len(), 1000);
    assert!(original(&b));
    let c = send(&mut svc, post(Some("\"k1\""), "1234")).await;
    assert!(original(&c));
    assert_eq!(h.calls(), 2);
}

/// A store that always fails.
#[derive(Debug, Clone)]
struct DownStore;

impl Store for DownStore {
    fn begin<'a>(
        &'a self,
        _: &'a str,
        _: &'a [u8; 32],
        _: Duration,
        _: Duration,
    ) -> StoreFuture<'a, Begin> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn complete<'a>(
        &'a self,
        _: &'a str,
        _: u64,
        _: &'a StoredResponse,
        _: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn renew<'a>(&'a self, _: &'a str, _: u64, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn release<'a>(&'a self, _: &'a str, _: u64) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
}

#[tokio::test(start_paused = true)]
async fn store_down_is_503_and_handler_never_runs() {
    let h = Handler::new();
    let mut svc = stack(IdempotencyLayer::new(DownStore), &h);
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers["retry-after"], "1");
    assert!(is_problem(&a));
    assert_eq!(h.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn fingerprint_headers_and_methods() {
    let h = Handler::new();
    let mut svc = stack(
        IdempotencyLayer::new(MemoryStore::new())
            .methods([http::Method::PUT])
            .fingerprint_headers([http::header::HeaderName::from_static("x-amount")]),
        &h,
    );
    let put = |amount: &str| {
        Request::put("/orders/1")
            .header("idempotency-key", "\"k\"")
            .header("x-api-key", support::API_KEY)
            .header("x-amount", amount)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert!(original(&send(&mut svc, put("10")).await));
    assert!(replayed(&send(&mut svc, put("10")).await));
    assert_eq!(send(&mut svc, put("99")).await.status, 422);
    // POST is no longer configured: passes through.
    assert!(original(&send(&mut svc, post(Some("\"k\""), "A")).await));
    assert!(original(&send(&mut svc, post(Some("\"k\""), "A")).await));
    assert_eq!(h.calls(), 3);
}

fn with_api_key(mut req: Request<Full<Bytes>>, api_key: &str) -> Request<Full<Bytes>> {
    req.headers_mut()
        .insert("x-api-key", api_key.parse().unwrap());
    req
}

/// Issue #15 item 2: by default two API keys sending the same `Idempotency-Key` get two
/// records; neither sees the other's response or learns that the key exists.
#[tokio::test(start_paused = true)]
async fn callers_are_scoped_by_credentials_by_default() {
    let h = Handler::new();
    let mut svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    let a = send(
        &mut svc,
        with_api_key(post(Some("\"order-1\""), "A"), "key-a"),
    )
    .await;
    let b = send(
        &mut svc,
        with_api_key(post(Some("\"order-1\""), "A"), "key-b"),
    )
    .await;
    assert!(original(&a) && original(&b), "no replay across callers");
    assert_ne!(a.body, b.body);
    // Another payload from a third caller: processed, not 422.
    let c = send(
        &mut svc,
        with_api_key(post(Some("\"order-1\""), "Z"), "key-c"),
    )
    .await;
    assert_eq!(c.status, StatusCode::CREATED);
    assert!(original(&c));
    // Each caller replays its own record.
    let a2 = send(
        &mut svc,
        with_api_key(post(Some("\"order-1\""), "A"), "key-a"),
    )
    .await;
    assert!(replayed(&a2));
    assert_eq!(a2.body, a.body);
    assert_eq!(h.calls(), 3);
    // No credentials at all: refused before the store, the handler does not run.
    let mut anon = post(Some("\"order-1\""), "A");
    anon.headers_mut().remove("x-api-key");
    let d = send(&mut svc, anon).await;
    assert_eq!(d.status, StatusCode::BAD_REQUEST);
    assert!(is_problem(&d));
    assert_eq!(h.calls(), 3);
    // Opting out is explicit, and then keys are shared.
    let mut global = stack(IdempotencyLayer::new(MemoryStore::new()).global_scope(), &h);
    send(
        &mut global,
        with_api_key(post(Some("\"order-1\""), "A"), "key-a"),
    )
    .await;
    let shared = send(
        &mut global,
        with_api_key(post(Some("\"order-1\""), "A"), "key-b"),
    )
    .await;
    assert!(replayed(&shared));
}

/// Issue #15 item 7: the header is an sf-string or sf-token with parameters ignored;
/// anything else is 400 with a problem body saying why.
#[tokio::test(start_paused = true)]
async fn key_syntax_is_a_structured_field() {
    let h = Handler::new();
    let mut svc = stack(IdempotencyLayer::new(MemoryStore::new()), &h);
    let a = send(&mut svc, post(Some("\"k1\";x=1"), "A")).await;
    assert!(original(&a));
    let b = send(&mut svc, post(Some("k1;x=1"), "A")).await;
    assert!(replayed(&b), "k1;x=1 is k1");
    for (bad, why) in [
        ("a b", "trailing characters after token"),
        ("a,b", "trailing characters after token"),
        ("@x", "not a structured-field string or token"),
        ("1abc", "a number"),
    ] {
        let r = send(&mut svc, post(Some(bad), "A")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(is_problem(&r));
        let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{bad}: {problem}"
        );
    }
    assert_eq!(h.calls(), 1);
    // Stripe-style opaque keys are an explicit option.
    let mut lenient = stack(
        IdempotencyLayer::new(MemoryStore::new())
            .key_mode(palisade_idempotency::key::KeyMode::Lenient),
        &h,
    );
    assert!(original(&send(&mut lenient, post(Some("a b"), "A")).await));
}

/// A store whose `complete` fails while `fail` is set (for the real response only when
/// `marker_ok`, so the outcome-unknown marker can be written).
#[derive(Debug, Clone)]
struct FlakyStore {
    inner: MemoryStore,
    fail: Arc<std::sync::atomic::AtomicBool>,
    marker_ok: bool,
    completes: Arc<std::sync::atomic::AtomicUsize>,
}

impl Store for FlakyStore {
    fn begin<'a>(
        &'a self,
        k: &'a str,
        fp: &'a [u8; 32],
        lease: Duration,
        ttl: Duration,
    ) -> StoreFuture<'a, Begin> {
        self.inner.begin(k, fp, lease, ttl)
    }
    fn complete<'a>(
        &'a self,
        k: &'a str,
        t: u64,
        r: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.completes.fetch_add(1, Ordering::SeqCst);
        let marker = r
            .headers
            .iter()
            .any(|(n, _)| n.as_str() == "palisade-idempotency-outcome");
        if self.fail.load(Ordering::SeqCst) && !(marker && self.marker_ok) {
            return Box::pin(async { Err(StoreError::new("write failed")) });
        }
        self.inner.complete(k, t, r, ttl)
    }
    fn renew<'a>(&'a self, k: &'a str, t: u64, lease: Duration) -> StoreFuture<'a, bool> {
        self.inner.renew(k, t, lease)
    }
    fn release<'a>(&'a self, k: &'a str, t: u64) -> StoreFuture<'a, bool> {
        self.inner.release(k, t)
    }
}

fn flaky(marker_ok: bool) -> FlakyStore {
    FlakyStore {
        inner: MemoryStore::new(),
        fail: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        marker_ok,
        completes: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    }
}

fn flaky_events(store: FlakyStore) -> (IdempotencyLayer<FlakyStore>, EventRecorder) {
    let log = EventRecorder::new();
    (IdempotencyLayer::new(store).on_event(log.on()), log)
}

/// Issue #15 item 3: a failed write after the handler ran keeps the key locked and is
/// retried; once it succeeds the retry replays. Never a second execution.
#[tokio::test(start_paused = true)]
async fn failed_store_write_is_retried_not_reexecuted() {
    let h = Handler::new();
    let store = flaky(false);
    let (layer, log) = flaky_events(store.clone());
    let mut svc = stack(layer.lease(Duration::from_secs(3)), &h);
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "the caller gets the response"
    );
    assert!(
        log.events::<IdempotencyEvent>()
            .contains(&IdempotencyEvent::StoreFailed {
                instance: "idempotency".into()
            })
    );
    // Well past the lease: the lock is still held (renewed), so 409, not a second run.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(send(&mut svc, post(Some("\"k1\""), "A")).await.status, 409);
    // The store recovers: the background retry stores the response.
    store.fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(replayed(&b));
    assert_eq!(b.body, a.body);
    assert_eq!(h.calls(), 1);
}

/// Issue #15 item 3: if the response can never be stored, the key ends "outcome unknown":
/// retries get a documented 500 problem instead of a second execution.
#[tokio::test(start_paused = true)]
async fn unstorable_response_marks_outcome_unknown() {
    let h = Handler::new();
    let store = flaky(true);
    let (layer, log) = flaky_events(store.clone());
    let mut svc = stack(layer.lease(Duration::from_secs(3)), &h);
    assert_eq!(
        send(&mut svc, post(Some("\"k1\""), "A")).await.status,
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        log.events::<IdempotencyEvent>()
            .contains(&IdempotencyEvent::OutcomeUnknown {
                instance: "idempotency".into(),
                recorded: true
            })
    );
    let attempts = store.completes.load(Ordering::SeqCst);
    assert!(
        attempts >= palisade_idempotency::STORE_ATTEMPTS as usize,
        "{attempts}"
    );
    let b = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(b.status, StatusCode::INTERNAL_SERVER_ERROR);
    let problem: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
    assert_eq!(
        problem["type"],
        palisade_idempotency::error::OUTCOME_UNKNOWN_TYPE
    );
    assert_eq!(h.calls(), 1);
    // And it stays so, well past any lease.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(send(&mut svc, post(Some("\"k1\""), "A")).await.status, 500);
    assert_eq!(h.calls(), 1);
}

/// A body that yields its only frame after `delay`.
struct SlowBody {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl http_body::Body for SlowBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.done = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            b"slow",
        )))))
    }
}

/// Issue #15 item 4: the lease is renewed while the response body is buffered, not only
/// while the handler computes the head.
#[tokio::test(start_paused = true)]
async fn lease_covers_response_body_buffering() {
    use http_body_util::BodyExt;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let handler = tower::service_fn(
        move |_req: Request<palisade_idempotency::body::RequestBody<Full<Bytes>>>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, Infallible>(Response::new(SlowBody {
                    sleep: Box::pin(tokio::time::sleep(Duration::from_secs(120))),
                    done: false,
                }))
            }
        },
    );
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(IdempotencyLayer::new(MemoryStore::new()).lease(Duration::from_secs(10)))
        .service(handler);
    let first = tokio::spawn(svc.clone().oneshot(post(Some("\"k1\""), "A")));
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..11 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let r = svc
            .clone()
            .oneshot(post(Some("\"k1\""), "A"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
    }
    let res = first.await.unwrap().unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "slow");
    let r = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Issue #15 item 6: a refusal rendered by a Palisade layer inside (here a 429 and a 503)
/// is never stored as the key's result, whatever `store_server_errors` says.
#[tokio::test(start_paused = true)]
async fn palisade_rejections_are_never_stored() {
    use http_body_util::BodyExt;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(
        move |_req: Request<palisade_idempotency::body::RequestBody<Full<Bytes>>>| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err::<Response<Full<Bytes>>, palisade_core::BoxError>(
                        palisade_core::RateLimited::new(
                            Duration::from_secs(1),
                            http::HeaderMap::new(),
                            vec!["default".into()],
                        )
                        .into(),
                    ),
                    1 => Err(palisade_core::CircuitOpen::new(Some(Duration::from_secs(1))).into()),
                    _ => Ok(Response::builder()
                        .status(201)
                        .body(Full::new(Bytes::from_static(b"done")))
                        .unwrap()),
                }
            }
        },
    );
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(IdempotencyLayer::new(MemoryStore::new()).store_server_errors(true))
        .layer(HandleRejectionsLayer::new())
        .service(inner);
    let r = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let r = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "done");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// `poll_ready` forwards the inner service's readiness.
#[tokio::test(start_paused = true)]
async fn poll_ready_forwards_inner_readiness() {
    #[derive(Clone)]
    struct Gate(Arc<std::sync::atomic::AtomicBool>, Handler);
    impl Service<Request<palisade_idempotency::body::RequestBody<Full<Bytes>>>> for Gate {
        type Response = Response<Full<Bytes>>;
        type Error = palisade_core::BoxError;
        type Future = <Handler as Service<
            Request<palisade_idempotency::body::RequestBody<Full<Bytes>>>,
        >>::Future;
        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            if self.0.load(Ordering::SeqCst) {
                std::task::Poll::Ready(Ok(()))
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
        fn call(
            &mut self,
            req: Request<palisade_idempotency::body::RequestBody<Full<Bytes>>>,
        ) -> Self::Future {
            self.1.call(req)
        }
    }
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut svc =
        IdempotencyLayer::new(MemoryStore::new()).layer(Gate(open.clone(), Handler::new()));
    let poll = |svc: &mut _| {
        let svc: &mut palisade_idempotency::Idempotency<Gate, MemoryStore, _> = svc;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        Service::<Request<Full<Bytes>>>::poll_ready(svc, &mut cx).is_ready()
    };
    assert!(!poll(&mut svc));
    open.store(true, Ordering::SeqCst);
    assert!(poll(&mut svc));
}

/// `max_execution_time` abandons a handler that runs too long: 504, and the key is released.
#[tokio::test(start_paused = true)]
async fn max_execution_time_bounds_the_detached_handler() {
    let h = Handler::new();
    h.0.delay_ms.store(10_000, Ordering::SeqCst);
    let mut svc = stack(
        IdempotencyLayer::new(MemoryStore::new()).max_execution_time(Duration::from_secs(1)),
        &h,
    );
    let started = tokio::time::Instant::now();
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    h.0.delay_ms.store(0, Ordering::SeqCst);
    assert!(original(&send(&mut svc, post(Some("\"k1\""), "A")).await));
    assert_eq!(h.calls(), 2);
}
