//! Shared test support: a scripted origin, a cache on paused time, request helpers.
#![allow(dead_code, unreachable_pub)]

use std::future::{Ready, ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_cache::{Cache, CacheLayer, Clock, MemoryStore};
use palisade_core::BoxError;
use tower::{Layer, Service, ServiceExt};

/// The wall time the cache's clock is anchored at (a whole second).
pub const T0_SECS: u64 = 1_800_000_000;

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0_SECS)
}

/// An HTTP-date `offset` seconds from T0.
pub fn date(offset: i64) -> String {
    let t = if offset >= 0 {
        t0() + Duration::from_secs(offset as u64)
    } else {
        t0() - Duration::from_secs(offset.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

pub type Handler =
    dyn Fn(&Request<()>, usize) -> Result<Response<Full<Bytes>>, BoxError> + Send + Sync;

/// An origin answering with a closure of (request, call number from 1), recording calls.
#[derive(Clone)]
pub struct Origin {
    pub calls: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Request<()>>>>,
    handler: Arc<Handler>,
}

impl Origin {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    /// Headers of the n-th request the origin saw (from 1).
    pub fn request_headers(&self, n: usize) -> HeaderMap {
        self.seen.lock().unwrap()[n - 1].headers().clone()
    }
}

pub fn origin(
    f: impl Fn(&Request<()>, usize) -> Result<Response<Full<Bytes>>, BoxError> + Send + Sync + 'static,
) -> Origin {
    Origin {
        calls: Arc::new(AtomicUsize::new(0)),
        seen: Arc::new(Mutex::new(Vec::new())),
        handler: Arc::new(f),
    }
}

impl Service<Request<()>> for Origin {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Ready<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut copy = Request::new(());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.headers_mut() = req.headers().clone();
        self.seen.lock().unwrap().push(copy);
        ready((self.handler)(&req, n))
    }
}

/// A response with `status`, `headers` and `body` (as the origin closure's result).
#[allow(clippy::unnecessary_wraps)]
pub fn resp(
    status: u16,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Ok(b.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap())
}

/// The default cache of the tests: 1 MiB in memory, clock at T0, `x-cache` status header.
pub fn layer() -> CacheLayer<MemoryStore> {
    CacheLayer::memory(1 << 20)
        .clock(Clock::anchored(t0()))
        .status_header(http::HeaderName::from_static("x-cache"))
}

pub fn cache(o: &Origin) -> Cache<Origin, MemoryStore> {
    layer().layer(o.clone())
}

pub fn get(uri: &str) -> Request<()> {
    req("GET", uri, &[])
}

pub fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "example.com");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

/// Status, headers and body of one call.
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn x_cache(&self) -> Option<&str> {
        self.header("x-cache")
    }
    pub fn age(&self) -> Option<u64> {
        self.header("age").map(|v| v.parse().unwrap())
    }
}

pub async fn send<S>(svc: &mut S, req: Request<()>) -> Got
where
    S: Service<Request<()>, Response = Response<palisade_cache::CacheBody<Full<Bytes>>>>,
    S::Error: std::fmt::Debug,
{
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn advance(secs: u64) {
    tokio::time::advance(Duration::from_secs(secs)).await;
}
