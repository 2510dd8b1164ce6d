//! Shared test support: a scripted origin, a cache on paused time, request helpers.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_cache::{Cache, CacheLayer, Clock, MemoryStore};
use palisade_core::BoxError;
use palisade_test::ScriptedService;
use palisade_test::scripted::respond;
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

/// The origin of the tests: palisade-test's [`ScriptedService`].
pub type Origin = ScriptedService;

/// An origin answering with a closure of (request, call number from 1); it records every
/// request (`requests()`) and counts calls (`calls()`).
pub fn origin(
    f: impl Fn(&Request<()>, usize) -> Result<Response<Full<Bytes>>, BoxError> + Send + Sync + 'static,
) -> Origin {
    ScriptedService::otherwise(respond(move |seen| {
        let mut req = Request::new(());
        *req.method_mut() = seen.method.clone();
        *req.uri_mut() = seen.uri.clone();
        *req.headers_mut() = seen.headers.clone();
        f(&req, seen.index + 1)
    }))
}

/// Headers of the n-th request `o` saw (from 1).
pub fn request_headers(o: &Origin, n: usize) -> HeaderMap {
    o.requests()[n - 1].headers.clone()
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
