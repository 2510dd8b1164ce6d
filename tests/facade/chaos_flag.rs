//! A fault driven by a feature flag: the `chaos` flag is on for 5 % of the users in the
//! `chaos` segment (a flagd-style fractional rollout on the user id), and the fault layer's
//! predicate evaluates it per request. Users outside the segment are never faulted, a user
//! keeps their outcome, and about one in twenty of the segment is faulted.
#![cfg(all(feature = "chaos", feature = "toggle"))]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use palisade::chaos::FaultLayer;
use palisade::toggle::{
    Condition, EvaluationContext, Flag, FlagSet, Flags, Fractional, StaticProvider, TargetingRule,
};
use tower::{Layer, ServiceExt, service_fn};

fn header<'a>(req: &'a dyn palisade::request::RequestParts, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_flag_chooses_the_faulted_users() {
    let flags = FlagSet::new().with(
        "chaos",
        Flag::boolean(false).rule(TargetingRule::fractional(
            Condition::Equals("segment".into(), "chaos".into()),
            Fractional::new([("on", 5), ("off", 95)]),
        )),
    );
    let provider = Arc::new(StaticProvider::new(flags));
    let faults = FaultLayer::new()
        .abort(StatusCode::SERVICE_UNAVAILABLE, 1.0)
        .max_active(10_000)
        .when(move |req| {
            let ctx = EvaluationContext::new()
                .with_targeting_key(header(req, "x-user"))
                .with("segment", header(req, "x-segment"));
            Flags::new(&*provider, ctx).is_enabled("chaos")
        });
    let svc = faults.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));

    let status = |user: usize, segment: &'static str| {
        let req = Request::get("/")
            .header("x-user", format!("user-{user}"))
            .header("x-segment", segment)
            .body(())
            .unwrap();
        let svc = svc.clone();
        async move { svc.oneshot(req).await.unwrap().status() }
    };

    let mut faulted = Vec::new();
    for user in 0..2_000 {
        if status(user, "chaos").await == StatusCode::SERVICE_UNAVAILABLE {
            faulted.push(user);
        }
        assert_eq!(
            status(user, "other").await,
            StatusCode::OK,
            "user {user} outside the segment"
        );
    }
    // 5 % of 2,000 is 100; the murmur3 buckets of these ids give a fixed count near it.
    assert!(
        (60..=140).contains(&faulted.len()),
        "{} faulted",
        faulted.len()
    );
    // The rollout is sticky: a faulted user is faulted again, another user is not.
    for &user in &faulted {
        assert_eq!(status(user, "chaos").await, StatusCode::SERVICE_UNAVAILABLE);
    }
    let spared = (0..2_000).find(|u| !faulted.contains(u)).unwrap();
    assert_eq!(status(spared, "chaos").await, StatusCode::OK);
}
