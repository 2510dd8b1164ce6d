//! Serves a job's status and result.

use super::store::{JobState, JobStore};
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::{Ready, ready};
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

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
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
        let Some(job) = self.store.get(id) else {
            return plain(StatusCode::NOT_FOUND, "no such job");
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
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(req.method(), req.uri().path())))
    }
}
