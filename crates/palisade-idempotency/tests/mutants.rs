//! Edge cases pinned for mutation testing (see the crate docs, "Mutation testing").

mod support;

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use palisade_core::BoxError;
use palisade_idempotency::body::RequestBody;
use palisade_idempotency::{IdempotencyLayer, MemoryStore};
use support::{Answer, Handler, post};
use tower::{Layer, Service, ServiceExt};

/// Calls a clone of `svc` without any rejection handling, so refusals stay errors.
async fn call<S, B>(svc: &S, req: Request<Full<Bytes>>) -> Result<Answer, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = BoxError> + Clone,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(req).await?;
    let (parts, body) = res.into_parts();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    })
}

fn is_replay(a: &Answer) -> bool {
    a.headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// The service's `Debug` names its inner service, settings, store and scope.
#[test]
fn debug_shows_inner_settings_store_and_scope() {
    let svc = IdempotencyLayer::new(MemoryStore::new()).layer(Handler::new());
    let text = format!("{svc:?}");
    assert!(text.starts_with("Idempotency { inner: Handler("), "{text}");
    for field in ["settings: ", "store: MemoryStore {", "scope: "] {
        assert!(text.contains(field), "{field} in {text}");
    }
}

/// A response body of exactly `max_response_body` bytes is stored and replayed; one byte
/// more is streamed on and not stored.
#[tokio::test(start_paused = true)]
async fn response_body_limit_is_inclusive() {
    let h = Handler::new();
    h.0.body_size.store(100, Ordering::SeqCst);
    let svc = IdempotencyLayer::new(MemoryStore::new())
        .max_response_body(100)
        .layer(h.clone());
    let first = call(&svc, post(Some("\"k1\""), "A")).await.unwrap();
    assert_eq!((first.status, first.body.len()), (StatusCode::CREATED, 100));
    assert!(!is_replay(&first));
    let again = call(&svc, post(Some("\"k1\""), "A")).await.unwrap();
    assert!(is_replay(&again));
    assert_eq!(again.body, first.body);
    assert_eq!(h.calls(), 1);

    h.0.body_size.store(101, Ordering::SeqCst);
    for _ in 0..2 {
        let a = call(&svc, post(Some("\"k2\""), "A")).await.unwrap();
        assert_eq!(a.body.len(), 101);
        assert!(!is_replay(&a));
    }
    assert_eq!(h.calls(), 3);
}

/// Only the layer's own marker header with the value `unknown` makes a stored record an
/// "outcome unknown" one: a handler's stored header with that value is replayed as is.
#[tokio::test(start_paused = true)]
async fn a_stored_header_valued_unknown_is_replayed() {
    let handler = tower::service_fn(|_req: Request<RequestBody<Full<Bytes>>>| async {
        Ok::<_, BoxError>(
            Response::builder()
                .status(StatusCode::CREATED)
                .header("content-type", "unknown")
                .body(Full::new(Bytes::from_static(b"made")))
                .unwrap(),
        )
    });
    let svc = IdempotencyLayer::new(MemoryStore::new()).layer(handler);
    let first = call(&svc, post(Some("\"k1\""), "A")).await.unwrap();
    assert!(!is_replay(&first));
    let again = call(&svc, post(Some("\"k1\""), "A")).await.unwrap();
    assert!(is_replay(&again));
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["content-type"], "unknown");
    assert_eq!(again.body, "made");
}

/// A request body that fails to read.
struct BrokenBody;

impl Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
    }
}

/// A request body that fails to read is that error, not "body too large", and the
/// handler never runs.
#[tokio::test(start_paused = true)]
async fn a_request_body_error_is_passed_on_not_called_too_large() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let handler = tower::service_fn(move |_req: Request<RequestBody<BrokenBody>>| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(Response::new(Full::new(Bytes::new()))) }
    });
    let svc = IdempotencyLayer::new(MemoryStore::new()).layer(handler);
    let req = Request::post("/orders")
        .header("x-api-key", support::API_KEY)
        .header("idempotency-key", "\"k1\"")
        .body(BrokenBody)
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert_eq!(err.to_string(), "connection reset");
    assert!(err.downcast_ref::<std::io::Error>().is_some(), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
