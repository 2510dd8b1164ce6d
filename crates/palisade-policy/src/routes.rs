//! Route dispatch as a public API, for programs that build one service per route themselves
//! (the `palisade-gateway` binary wraps a different forwarder in each route's stack).

use http::{HeaderMap, Method, Uri};
use tower_service::Service;

use crate::set::PolicySet;
use crate::stack::RouteStack;

impl PolicySet {
    /// The number of routes, the fallback included (it is the last).
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// The index of the route that takes a request head: the first route whose `match`
    /// holds, else the fallback's (`route_count() - 1`). Route `i < route_count() - 1` is
    /// the file's `routes[i]`. Allocates nothing.
    pub fn route_index(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> usize {
        self.route_for(method, uri, headers)
    }

    /// The name of route `i` (its `name`, else its matcher; `fallback` for the fallback).
    ///
    /// # Panics
    ///
    /// If `i >= route_count()`.
    pub fn route_name(&self, i: usize) -> &str {
        &self.routes[i].name
    }

    /// Route `i`'s layers, in the canonical order, around `inner`. Stacks built from the same
    /// route share its layers' state (breaker window, limiter buckets, bulkhead slots), and
    /// so do stacks built from a route carried over by a reload.
    ///
    /// ```
    /// use palisade_policy::PolicySet;
    /// use tower::{ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let set = PolicySet::from_toml(r#"
    ///     [[routes]]
    ///     match = { path = "/one" }
    ///     rate_limit = { quotas = [{ limit = 1, window = "1m" }] }
    ///     [fallback]
    /// "#).unwrap();
    /// let req = || http::Request::get("/one").body(axum_core::body::Body::empty()).unwrap();
    /// let i = set.route_index(req().method(), req().uri(), req().headers());
    /// let app = service_fn(|_req: http::Request<axum_core::body::Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(axum_core::body::Body::empty()))
    /// });
    /// let stack = set.route_stack(i, app);
    /// assert_eq!(stack.clone().oneshot(req()).await.unwrap().status(), 200);
    /// assert_eq!(stack.oneshot(req()).await.unwrap().status(), 429);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `i >= route_count()`.
    pub fn route_stack<S, ResB>(&self, i: usize, inner: S) -> RouteStack
    where
        S: Service<http::Request<axum_core::body::Body>, Response = http::Response<ResB>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<palisade_core::BoxError>,
        ResB: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        ResB::Error: Into<palisade_core::BoxError>,
    {
        self.routes[i].layers.stack(inner)
    }
}
