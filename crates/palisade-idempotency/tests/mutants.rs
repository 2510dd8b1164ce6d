//! Edge cases pinned for mutation testing (see CONTRIBUTING.md, "Mutation testing").

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use palisade_core::BoxError;
use palisade_idempotency::body::RequestBody;
use palisade_idempotency::{
    Begin, IdempotencyLayer, MemoryStore, Store, StoreError, StoreFuture, StoredResponse,
};
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
    let calls = Arc::new(AtomicUsize::new(0));
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

/// A [`MemoryStore`] counting renewals and writes; writes fail while `fail` is set.
#[derive(Debug, Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    fail: Arc<AtomicBool>,
    renews: Arc<AtomicUsize>,
    completes: Arc<AtomicUsize>,
}

impl Store for CountingStore {
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
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::new("write failed")) });
        }
        self.inner.complete(k, t, r, ttl)
    }
    fn renew<'a>(&'a self, k: &'a str, t: u64, lease: Duration) -> StoreFuture<'a, bool> {
        self.renews.fetch_add(1, Ordering::SeqCst);
        self.inner.renew(k, t, lease)
    }
    fn release<'a>(&'a self, k: &'a str, t: u64) -> StoreFuture<'a, bool> {
        self.inner.release(k, t)
    }
}

/// While the handler runs, the lease is renewed every third of its length: a 2.5 s handler
/// under a 3 s lease is renewed exactly twice (at 1 s and 2 s).
#[tokio::test(start_paused = true)]
async fn renewal_runs_every_third_of_the_lease() {
    let h = Handler::new();
    h.0.delay_ms.store(2500, Ordering::SeqCst);
    let store = CountingStore::default();
    let svc = IdempotencyLayer::new(store.clone())
        .lease(Duration::from_secs(3))
        .layer(h.clone());
    let a = call(&svc, post(Some("\"k1\""), "A")).await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(store.renews.load(Ordering::SeqCst), 2);
    assert_eq!(store.completes.load(Ordering::SeqCst), 1);
}

/// A failed write is retried after 50 ms, doubling, capped at a third of the lease, each
/// retry renewing the lease first; from the fifth attempt the "outcome unknown" marker is
/// tried too.
#[tokio::test(start_paused = true)]
async fn failed_writes_are_retried_on_a_doubling_schedule() {
    let h = Handler::new();
    let store = CountingStore::default();
    store.fail.store(true, Ordering::SeqCst);
    let svc = IdempotencyLayer::new(store.clone())
        .lease(Duration::from_secs(3))
        .layer(h.clone());
    let start = tokio::time::Instant::now();
    let a = call(&svc, post(Some("\"k1\""), "A")).await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(start.elapsed(), Duration::ZERO);
    let completes = || store.completes.load(Ordering::SeqCst);
    let renews = || store.renews.load(Ordering::SeqCst);
    assert_eq!((completes(), renews()), (1, 0));
    // Attempts 2..=5 at 50, 150, 350 and 750 ms (the fifth also writes the marker), the
    // sixth 800 ms later, then 1 s apart (the cap, a third of the lease).
    let expect = [
        (49, 1, 0),
        (50, 2, 1),
        (149, 2, 1),
        (150, 3, 2),
        (350, 4, 3),
    ];
    for (ms, c, r) in expect.into_iter().chain([
        (749, 4, 3),
        (750, 6, 4),
        (1549, 6, 4),
        (1550, 8, 5),
        (2549, 8, 5),
        (2550, 10, 6),
    ]) {
        tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
        tokio::task::yield_now().await;
        assert_eq!((completes(), renews()), (c, r), "at {ms} ms");
    }
    // A retry meanwhile is refused as in flight, never executed again.
    assert_eq!(
        call(&svc, post(Some("\"k1\""), "A"))
            .await
            .unwrap_err()
            .to_string(),
        palisade_core::IdempotencyConflict::new().to_string()
    );
    assert_eq!(h.calls(), 1);
}

/// The Redis store against a scripted connection (no server needed).
#[cfg(feature = "redis")]
mod redis_replies {
    use std::sync::{Arc, Mutex};

    use palisade_idempotency::{Begin, RedisLock, RedisStore, Store};
    use redis::Value;

    /// A connection answering every command with the next scripted reply.
    #[derive(Clone, Default)]
    struct Scripted(Arc<Mutex<Vec<Value>>>);

    impl redis::aio::ConnectionLike for Scripted {
        fn req_packed_command<'a>(
            &'a mut self,
            _cmd: &'a redis::Cmd,
        ) -> redis::RedisFuture<'a, Value> {
            let v = self.0.lock().unwrap().remove(0);
            Box::pin(async move { Ok(v) })
        }
        fn req_packed_commands<'a>(
            &'a mut self,
            _pipeline: &'a redis::Pipeline,
            _offset: usize,
            _count: usize,
        ) -> redis::RedisFuture<'a, Vec<Value>> {
            unreachable!("the store sends no pipeline")
        }
        fn get_db(&self) -> i64 {
            0
        }
    }

    fn scripted(replies: Vec<Value>) -> Scripted {
        Scripted(Arc::new(Mutex::new(replies)))
    }

    /// Integers in a script's reply are read whether they come as integers, bulk strings or
    /// simple strings (a proxy or RESP3 server may re-type them).
    #[tokio::test]
    async fn begin_reads_integers_of_every_reply_type() {
        let status = |s: &str| Value::SimpleString(s.to_owned());
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let store = RedisStore::new(
            scripted(vec![
                Value::Array(vec![status("1")]),
                Value::Array(vec![bulk("3")]),
                Value::Array(vec![Value::Int(0), status("42"), bulk("1")]),
                Value::Array(vec![status("x")]),
            ]),
            "p:",
        );
        let fp = [7; 32];
        let lease = std::time::Duration::from_secs(1);
        assert_eq!(
            store.begin("k", &fp, lease, lease).await.unwrap(),
            Begin::InFlight
        );
        assert_eq!(
            store.begin("k", &fp, lease, lease).await.unwrap(),
            Begin::Mismatch
        );
        assert_eq!(
            store.begin("k", &fp, lease, lease).await.unwrap(),
            Begin::Started {
                fencing_token: 42,
                took_over_expired: true
            }
        );
        assert!(store.begin("k", &fp, lease, lease).await.is_err());
    }

    /// `Debug` shows the key prefix of the store and the lock, and no connection.
    #[test]
    fn debug_shows_the_prefix() {
        let store = RedisStore::new(Scripted::default(), "idem:");
        assert_eq!(format!("{store:?}"), "RedisStore { prefix: \"idem:\", .. }");
        let lock = RedisLock::new(Scripted::default(), "locks:");
        assert_eq!(format!("{lock:?}"), "RedisLock { prefix: \"locks:\", .. }");
    }
}
