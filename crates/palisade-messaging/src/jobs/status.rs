//! Serves a job's status and result.

use super::store::{JobState, JobStore};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::task::{Context, Poll};
use tower_service::Service;

/// Serves `GET {prefix}/{id}` and `GET {prefix}/{id}/result` from a [`JobStore`]; mount it
/// at the store's prefix. See the [module docs](crate::jobs).
#[derive(Debug, Clone)]
pub struct JobStatusService {
    store: JobStore,
}

impl JobStatusService {
    /// Serves the jobs of `store`.
    pub fn new(store: JobStore) -> Self {
        Self { store }
    }

    async fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let Some(rest) = path
            .strip_prefix(self.store.prefix())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        let (id, want_result) = match rest.strip_suffix("/result") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        if id.is_empty() || id.contains('/') {
            return plain(StatusCode::NOT_FOUND, "not found");
        }
        if method != Method::GET && method != Method::HEAD {
            let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let job = match self.store.get(id).await {
            Ok(Some(job)) => job,
            Ok(None) => return plain(StatusCode::NOT_FOUND, "no such job"),
            Err(e) => {
                tracing::warn!(target: "palisade::messaging", error = %e, "job store unavailable");
                let mut res = plain(StatusCode::SERVICE_UNAVAILABLE, "job store unavailable");
                res.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                return res;
            }
        };
        if let (true, Some(stored)) = (want_result, job.response) {
            let mut res = Response::new(Full::new(stored.body));
            *res.status_mut() = stored.status;
            if let Some(ct) = stored.content_type {
                res.headers_mut().insert(CONTENT_TYPE, ct);
            }
            return res;
        }
        let mut json = format!("{{\"id\":\"{id}\",\"status\":\"{}\"", job.state.as_str());
        match job.state {
            JobState::Succeeded => {
                let _ = write!(json, ",\"result\":\"{}/{id}/result\"", self.store.prefix());
            }
            JobState::Failed => {
                json.push_str(",\"error\":");
                json.push_str(&json_string(job.error.as_deref().unwrap_or("")));
            }
            _ => {}
        }
        json.push('}');
        let status = if want_result && job.state != JobState::Failed {
            StatusCode::ACCEPTED // not done yet
        } else {
            StatusCode::OK
        };
        let mut res = Response::new(Full::new(Bytes::from(json)));
        *res.status_mut() = status;
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl<B> Service<Request<B>> for JobStatusService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    /// Boxed: a lookup may ask Redis.
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        Box::pin(async move { Ok(this.respond(&method, &path).await) })
    }
}
