//! Shared test helpers: a handler that counts executions and behaves by path.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations
)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum_core::body::Body;
use http::{Request, Response, StatusCode};
use palisade_policy::{PolicyHandle, PolicyService};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt, service_fn};

pub type App = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// `/slow*` sleeps 2 s, `/fail*` answers 500, `/cached*` is fresh for 60 s, everything
/// else 200; `x-deadline: yes` in the
/// response says the `Deadline` extension was there.
pub fn app(count: Arc<AtomicUsize>) -> App {
    BoxCloneSyncService::new(service_fn(move |req: Request<Body>| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let path = req.uri().path().to_owned();
            if path.starts_with("/slow") {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let mut res = Response::new(Body::from("ok"));
            if path.starts_with("/cached") {
                res.headers_mut()
                    .insert("cache-control", "public, max-age=60".parse().unwrap());
            }
            if path.starts_with("/fail") {
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            if req.extensions().get::<palisade_core::Deadline>().is_some() {
                res.headers_mut()
                    .insert("x-deadline", "yes".parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    }))
}

pub struct Server {
    pub svc: PolicyService<App>,
    pub count: Arc<AtomicUsize>,
    pub handle: PolicyHandle,
}

impl Server {
    pub fn new(handle: PolicyHandle) -> Self {
        let count = Arc::new(AtomicUsize::new(0));
        let svc = handle.layer().layer(app(count.clone()));
        Self { svc, count, handle }
    }
    pub fn toml(text: &str) -> Self {
        Self::new(PolicyHandle::new(
            palisade_policy::PolicySet::from_toml(text).unwrap(),
        ))
    }
    pub async fn get(&self, path: &str) -> Response<Body> {
        self.req(Request::get(path).body(Body::empty()).unwrap())
            .await
    }
    pub async fn req(&self, req: Request<Body>) -> Response<Body> {
        self.svc.clone().oneshot(req).await.unwrap()
    }
    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }
    pub fn runs(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}
