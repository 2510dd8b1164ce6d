//! Shared test helpers: a counting handler and request builders.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::new_without_default)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_core::BoxError;
use palisade_idempotency::body::RequestBody;
use tokio::sync::Semaphore;

#[derive(Debug)]
pub struct Behaviour {
    pub calls: AtomicUsize,
    pub status: AtomicU16,
    pub delay_ms: AtomicU64,
    pub fail_next: AtomicBool,
    pub gate: Semaphore,
    pub gated: AtomicBool,
    pub body_size: AtomicUsize,
}

/// A handler counting its executions; answers `{"id":N,"body":"..."}` with a
/// `content-type` (stored) and an `x-request-n` header (not stored).
#[derive(Debug, Clone)]
pub struct Handler(pub Arc<Behaviour>);

impl Handler {
    pub fn new() -> Self {
        Self(Arc::new(Behaviour {
            calls: AtomicUsize::new(0),
            status: AtomicU16::new(201),
            delay_ms: AtomicU64::new(0),
            fail_next: AtomicBool::new(false),
            gate: Semaphore::new(0),
            gated: AtomicBool::new(false),
            body_size: AtomicUsize::new(0),
        }))
    }
    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }
}

impl tower::Service<Request<RequestBody<Full<Bytes>>>> for Handler {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<Full<Bytes>>>) -> Self::Future {
        let b = self.0.clone();
        Box::pin(async move {
            let n = b.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if b.gated.load(Ordering::SeqCst) {
                b.gate.acquire().await.unwrap().forget();
            }
            let delay = b.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if b.fail_next.swap(false, Ordering::SeqCst) {
                return Err::<_, BoxError>("handler failed".into());
            }
            let body = req.into_body().collect().await?.to_bytes();
            let size = b.body_size.load(Ordering::SeqCst);
            let text = if size > 0 {
                "x".repeat(size)
            } else {
                format!(
                    "{{\"id\":{n},\"body\":\"{}\"}}",
                    String::from_utf8_lossy(&body)
                )
            };
            Ok(Response::builder()
                .status(b.status.load(Ordering::SeqCst))
                .header("content-type", "application/json")
                .header("x-request-n", n.to_string())
                .body(Full::new(Bytes::from(text)))
                .unwrap())
        })
    }
}

/// The API key every test request carries (the layer scopes keys by credentials).
pub const API_KEY: &str = "client-1";

pub fn post(key: Option<&str>, body: &'static str) -> Request<Full<Bytes>> {
    let mut b = Request::post("/orders?x=1").header("x-api-key", API_KEY);
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

pub fn with_tenant(mut req: Request<Full<Bytes>>, tenant: &str) -> Request<Full<Bytes>> {
    req.headers_mut()
        .insert("x-tenant", tenant.parse().unwrap());
    req
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub async fn send<S, B>(svc: &mut S, req: Request<Full<Bytes>>) -> Answer
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub fn is_problem(a: &Answer) -> bool {
    a.headers
        .get("content-type")
        .map(http::HeaderValue::as_bytes)
        == Some(b"application/problem+json")
}
