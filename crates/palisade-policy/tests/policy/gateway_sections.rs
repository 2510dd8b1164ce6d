//! The gateway's sections (`listeners`, `upstreams`, `admin`, a route's `forward`) are part
//! of the one file: the library checks their shape only, and exposes route dispatch for
//! programs that wrap a different service in each route's stack.

use std::convert::Infallible;

use axum_core::body::Body;
use palisade_policy::PolicySet;
use tower::{ServiceExt, service_fn};

#[test]
fn gateway_sections_are_accepted_and_ignored() {
    let set = PolicySet::from_toml(
        r#"
        [[listeners]]
        address = "127.0.0.1:8080"
        [admin]
        address = "127.0.0.1:9901"
        [upstreams.api]
        endpoints = ["127.0.0.1:3000"]
        [[routes]]
        match = { prefix = "/api" }
        forward = { upstream = "api", strip_prefix = "/api" }
        [fallback]
        forward = { upstream = "api" }
        "#,
    )
    .unwrap();
    assert_eq!(set.route_count(), 2);
    assert_eq!(set.route_name(1), "fallback");
}

#[test]
fn gateway_sections_of_the_wrong_shape_are_reported() {
    let err = PolicySet::from_toml(
        r#"
        listeners = "127.0.0.1:8080"
        upstreams = []
        admin = 1
        [fallback]
        "#,
    )
    .unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["listeners", "upstreams", "admin"]);
}

#[tokio::test(flavor = "current_thread")]
async fn route_stacks_wrap_any_service_and_share_state() {
    let set = PolicySet::from_toml(
        r#"
        [[routes]]
        match = { prefix = "/one" }
        rate_limit = { quotas = [{ limit = 1, window = "1m" }] }
        [fallback]
        "#,
    )
    .unwrap();
    let req = |p: &str| http::Request::get(p).body(Body::empty()).unwrap();
    let r = req("/one/x");
    let i = set.route_index(r.method(), r.uri(), r.headers());
    assert_eq!(i, 0);
    let r = req("/two");
    assert_eq!(set.route_index(r.method(), r.uri(), r.headers()), 1);
    let app = |name: &'static str| {
        service_fn(move |_r: http::Request<Body>| async move {
            Ok::<_, Infallible>(http::Response::new(Body::from(name)))
        })
    };
    // Two stacks of the same route (different inner services) share its limiter.
    let first = set.route_stack(0, app("first"));
    let second = set.route_stack(0, app("second"));
    assert_eq!(first.oneshot(req("/one")).await.unwrap().status(), 200);
    assert_eq!(second.oneshot(req("/one")).await.unwrap().status(), 429);
}
