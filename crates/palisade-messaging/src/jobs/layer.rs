//! The layer: answers `202 Accepted` and runs the request in the background.

use super::store::{JobStore, StoredResponse};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use palisade_core::BoxError;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Semaphore;
use tower_layer::Layer;
use tower_service::Service;

/// Turns each request into a background job: see the [module docs](crate::jobs).
#[derive(Debug, Clone)]
pub struct AsyncJobLayer {
    store: JobStore,
    max_concurrency: usize,
}

impl AsyncJobLayer {
    /// Jobs kept in `store`, at most 64 running at once.
    pub fn new(store: JobStore) -> Self {
        Self {
            store,
            max_concurrency: 64,
        }
    }

    /// Most jobs running at once (others wait, `pending`); clamped to 1 ..= 10 000.
    #[must_use]
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.clamp(1, 10_000);
        self
    }
}

impl<S> Layer<S> for AsyncJobLayer {
    type Service = AsyncJob<S>;

    fn layer(&self, inner: S) -> AsyncJob<S> {
        AsyncJob {
            inner,
            store: self.store.clone(),
            permits: Arc::new(Semaphore::new(self.max_concurrency)),
        }
    }
}

/// The service made by [`AsyncJobLayer`]. `Clone`: clones share the store and the
/// concurrency limit.
#[derive(Debug, Clone)]
pub struct AsyncJob<S> {
    inner: S,
    store: JobStore,
    permits: Arc<Semaphore>,
}

impl<S> AsyncJob<S> {
    palisade_core::define_inner_service_accessors!();
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Marks the job failed if its task ends without finishing it (a panic in the inner
/// service, a runtime shutting down).
struct FinishGuard {
    store: JobStore,
    id: String,
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        // A no-op for a job that finished (a finished job never changes).
        self.store.interrupted(&self.id);
    }
}

impl<S, B, RB> Service<Request<B>> for AsyncJob<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    /// Boxed: the job path spawns a task (and may ask Redis) anyway.
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service is made ready inside each job, not here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let store = self.store.clone();
        let permits = self.permits.clone();
        Box::pin(async move {
            let id = match store.create().await {
                Ok(Some(id)) => id,
                Ok(None) => return Ok(refused("{\"error\":\"too many jobs\"}")),
                Err(e) => {
                    tracing::warn!(target: "palisade::messaging", error = %e, "job store unavailable");
                    return Ok(refused("{\"error\":\"job store unavailable\"}"));
                }
            };
            let location = format!("{}/{id}", store.prefix());
            let body =
                format!("{{\"id\":\"{id}\",\"status\":\"pending\",\"location\":\"{location}\"}}");
            spawn_job(inner, req, store, permits, id);
            let mut res = json_response(StatusCode::ACCEPTED, body);
            // The id and prefix are checked ASCII, so the header value is always valid.
            if let Ok(v) = HeaderValue::try_from(location) {
                res.headers_mut().insert(LOCATION, v);
            }
            Ok(res)
        })
    }
}

/// `503` with `Retry-After: 1`: the store is full, or unreachable.
fn refused(body: &'static str) -> Response<Full<Bytes>> {
    let mut res = json_response(StatusCode::SERVICE_UNAVAILABLE, body.to_owned());
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// Runs job `id` in the background under the concurrency limit and stores its outcome.
fn spawn_job<S, B, RB>(
    mut inner: S,
    req: Request<B>,
    store: JobStore,
    permits: Arc<Semaphore>,
    id: String,
) where
    S: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    let guard = FinishGuard {
        store: store.clone(),
        id,
    };
    tokio::spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return;
        };
        store.running(&guard.id).await;
        let outcome = async {
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let res = inner.call(req).await.map_err(Into::into)?;
            let (parts, body) = res.into_parts();
            let body = Limited::new(body, store.max_result_bytes())
                .collect()
                .await?
                .to_bytes();
            Ok::<_, BoxError>(StoredResponse {
                status: parts.status,
                content_type: parts.headers.get(CONTENT_TYPE).cloned(),
                body,
            })
        }
        .await
        .map_err(|e| e.to_string());
        store.finish(&guard.id, outcome).await;
    });
}
