//! [`ExplainService`]: the live set's [`explain`](crate::PolicySet::explain) as JSON, for an
//! admin route such as `/palisade/policies`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum_core::body::Body;
use http::{HeaderValue, Request, Response, header};
use tower_service::Service;

use crate::reload::PolicyHandle;

/// Answers every request with the live policy set's effective stacks as JSON
/// (`application/json`). Mount it on an admin route, e.g. with axum:
/// `Router::new().route_service("/palisade/policies", handle.explain_service())`.
/// It shows the set in force after the latest successful reload.
#[derive(Debug, Clone)]
pub struct ExplainService {
    handle: PolicyHandle,
}

impl PolicyHandle {
    /// A service answering with [`explain`](crate::PolicySet::explain) of the live set.
    pub fn explain_service(&self) -> ExplainService {
        ExplainService {
            handle: self.clone(),
        }
    }
}

impl<B> Service<Request<B>> for ExplainService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(Body::from(self.handle.current().explain().to_string()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        ready(Ok(res))
    }
}
