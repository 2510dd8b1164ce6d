//! Prometheus text exposition: recorder setup and a `/metrics` Tower service.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::names::{
    BULKHEAD_IN_FLIGHT_AT_ADMISSION, BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE, COUNT_BUCKETS,
    DURATION_BUCKETS, REQUEST_DURATION_SECONDS,
};

/// Content type of the Prometheus text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A [`PrometheusBuilder`] with [`DURATION_BUCKETS`] for the request-duration histogram
/// and [`COUNT_BUCKETS`] for the bulkhead histograms (rendered as Prometheus histograms
/// rather than summaries).
pub fn prometheus_builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION_SECONDS.to_owned()),
            DURATION_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(BULKHEAD_IN_FLIGHT_AT_ADMISSION.to_owned()),
                COUNT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE.to_owned()),
                COUNT_BUCKETS,
            )
        })
        .expect("bucket lists are not empty")
}

/// Installs the Prometheus recorder globally (with [`prometheus_builder`]), describes the
/// Palisade metrics, and returns the handle to render from.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    let handle = prometheus_builder().install_recorder()?;
    crate::describe();
    Ok(handle)
}

/// A Tower service answering every request with the rendered metrics
/// (`text/plain; version=0.0.4`). Mount it at `/metrics`.
#[derive(Debug, Clone)]
pub struct PrometheusService {
    handle: PrometheusHandle,
}

impl PrometheusService {
    /// Serves `handle.render()`.
    pub fn new(handle: PrometheusHandle) -> Self {
        Self { handle }
    }

    /// The handle rendered.
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }
}

impl<B> tower_service::Service<Request<B>> for PrometheusService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from(self.handle.render())));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
        ready(Ok(res))
    }
}

/// An axum `Router` serving `GET /metrics` from `handle`.
#[cfg(feature = "axum")]
pub fn prometheus_router<S: Clone + Send + Sync + 'static>(
    handle: PrometheusHandle,
) -> axum::Router<S> {
    axum::Router::new().route_service("/metrics", PrometheusService::new(handle))
}
