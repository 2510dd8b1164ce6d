//! `/livez`, `/readyz` and `/health` as a Tower service (and an axum `Router`).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use crate::registry::HealthRegistry;
use crate::report::{HEALTH_JSON, HealthReport};

/// Which probe a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Liveness,
    Readiness,
}

/// A Tower service answering health probes from a [`HealthRegistry`]:
///
/// | path | checks run | status |
/// |---|---|---|
/// | `/livez` | none: the process answers | always 200 `{"status":"pass"}` |
/// | `/readyz`, `/health`, `/healthz` | all (cached) | 200 for pass/warn, 503 for fail |
///
/// Any other path is 404, any method but GET/HEAD 405. Responses are
/// `application/health+json` with `Cache-Control: no-store`.
#[derive(Clone, Debug)]
pub struct HealthService {
    registry: HealthRegistry,
}

impl HealthService {
    /// A service over `registry`.
    pub fn new(registry: HealthRegistry) -> Self {
        Self { registry }
    }
}

impl HealthRegistry {
    /// The probe endpoints as a Tower service; see [`HealthService`].
    pub fn service(&self) -> HealthService {
        HealthService::new(self.clone())
    }

    /// The probe endpoints as an axum `Router` to merge into an application's router.
    #[cfg(feature = "axum")]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let svc = self.service();
        axum::Router::new()
            .route_service("/livez", svc.clone())
            .route_service("/readyz", svc.clone())
            .route_service("/health", svc.clone())
            .route_service("/healthz", svc)
    }
}

/// Renders a report as an `application/health+json` response.
pub fn health_response(report: &HealthReport) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&report.to_json()).unwrap_or_default();
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = report.http_status();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    res
}

/// The response future of [`HealthService`]. Health probes are not the hot path; the
/// future is boxed.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B> tower_service::Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let probe = match req.uri().path().trim_end_matches('/') {
            "/livez" => Some(Probe::Liveness),
            "/readyz" | "/health" | "/healthz" => Some(Probe::Readiness),
            _ => None,
        };
        let head = req.method() == Method::HEAD;
        let allowed = head || req.method() == Method::GET;
        let registry = self.registry.clone();
        ResponseFuture {
            inner: Box::pin(async move {
                let Some(probe) = probe else {
                    return Ok(plain(StatusCode::NOT_FOUND));
                };
                if !allowed {
                    let mut res = plain(StatusCode::METHOD_NOT_ALLOWED);
                    res.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    return Ok(res);
                }
                let report = match probe {
                    Probe::Liveness => registry.liveness(),
                    Probe::Readiness => registry.report().await,
                };
                let mut res = health_response(&report);
                if head {
                    *res.body_mut() = Full::new(Bytes::new());
                }
                Ok(res)
            }),
        }
    }
}
