//! Routing: weights, stickiness, override, rules, blue-green, drain, response header.

use crate::support;

use std::time::Duration;

use http::{HeaderName, Method, Request};
use palisade_core::key::HeaderKey;
use palisade_test::EventRecorder;
use palisade_test::scripted::{delay, status};
use palisade_traffic::{RouteReason, Rule, Split, TrafficEvent};
use support::Arm;
use tower::{Service, ServiceExt};

fn req(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap()
}

fn two_arms() -> (Arm, Arm) {
    (support::arm("stable"), support::arm("canary"))
}

#[test]
fn random_weights_within_one_percent_over_100k() {
    let (a, b) = two_arms();
    let (split, handle) = Split::builder()
        .arm("stable", a)
        .arm("canary", b)
        .weights([90, 10])
        .seed(7)
        .build()
        .unwrap();
    for (weights, expect_canary) in [([90, 10], 0.10), ([75, 25], 0.25), ([50, 50], 0.5)] {
        handle.set_weights(&weights).unwrap();
        let r = req(Method::GET, "/");
        let n = 100_000;
        let canary = (0..n).filter(|_| split.route(&r).arm == 1).count();
        let share = canary as f64 / f64::from(n);
        assert!((share - expect_canary).abs() < 0.01, "{weights:?}: {share}");
        assert_eq!(split.route(&r).reason, RouteReason::Random);
    }
}

#[test]
fn sticky_weights_within_one_percent_over_100k_keys() {
    let (a, b) = two_arms();
    let (split, _) = Split::builder()
        .arm("stable", a)
        .arm("canary", b)
        .weights([80, 20])
        .sticky(HeaderKey::new(HeaderName::from_static("x-user")))
        .build()
        .unwrap();
    let n = 100_000;
    let canary = (0..n)
        .filter(|i| {
            let r = Request::get("/")
                .header("x-user", format!("user-{i}"))
                .body(())
                .unwrap();
            let route = split.route(&r);
            assert_eq!(route.reason, RouteReason::Sticky);
            route.arm == 1
        })
        .count();
    let share = canary as f64 / f64::from(n);
    assert!((share - 0.20).abs() < 0.01, "{share}");
}

#[test]
fn sticky_keys_never_move_back_from_canary_while_it_grows() {
    let (a, b) = two_arms();
    let (split, handle) = Split::builder()
        .arm("stable", a)
        .arm("canary", b)
        .weights([99, 1])
        .sticky(HeaderKey::new(HeaderName::from_static("x-user")))
        .build()
        .unwrap();
    let reqs: Vec<_> = (0..1000)
        .map(|i| {
            Request::get("/")
                .header("x-user", format!("u{i}"))
                .body(())
                .unwrap()
        })
        .collect();
    let mut on_canary = vec![false; reqs.len()];
    let mut prev_count = 0;
    for pct in [1u32, 5, 10, 25, 50, 75, 99, 100] {
        handle.set_weights(&[100 - pct, pct]).unwrap();
        for (i, r) in reqs.iter().enumerate() {
            let now = split.route(r).arm == 1;
            // Same key, same weights: same arm.
            assert_eq!(split.route(r).arm == 1, now);
            assert!(
                !on_canary[i] || now,
                "key u{i} moved back from canary at {pct}%"
            );
            on_canary[i] = now;
        }
        let count = on_canary.iter().filter(|c| **c).count();
        assert!(count >= prev_count);
        prev_count = count;
    }
    assert_eq!(prev_count, 1000);
}

#[tokio::test]
async fn override_header_and_cookie_force_an_arm() {
    let (a, b) = two_arms();
    let (split, handle) = Split::builder()
        .arm("stable", a)
        .arm("canary", b)
        .weights([100, 0])
        .override_header(HeaderName::from_static("x-arm"))
        .override_cookie("arm")
        .override_access(palisade_traffic::OverrideAccess::anyone())
        .build()
        .unwrap();
    let forced = Request::get("/")
        .header("x-arm", "canary")
        .body(())
        .unwrap();
    assert_eq!(split.route(&forced).reason, RouteReason::Override);
    assert_eq!(
        split.clone().oneshot(forced).await.unwrap().headers()["x-arm"].clone(),
        "canary"
    );
    let cookie = Request::get("/")
        .header("cookie", "session=1; arm=canary")
        .body(())
        .unwrap();
    assert_eq!(
        split.clone().oneshot(cookie).await.unwrap().headers()["x-arm"].clone(),
        "canary"
    );
    // Unknown arm name: ignored, weights decide.
    let unknown = Request::get("/").header("x-arm", "nope").body(()).unwrap();
    assert_eq!(split.route(&unknown).reason, RouteReason::Random);
    assert_eq!(
        split.clone().oneshot(unknown).await.unwrap().headers()["x-arm"].clone(),
        "stable"
    );
    // Drained arm: the override cannot force it.
    handle.drain("canary").unwrap();
    let forced = Request::get("/")
        .header("x-arm", "canary")
        .body(())
        .unwrap();
    assert_eq!(
        split.clone().oneshot(forced).await.unwrap().headers()["x-arm"].clone(),
        "stable"
    );
}

#[tokio::test]
async fn strangler_path_rules_move_routes_one_by_one() {
    let (legacy, new) = (support::arm("legacy"), support::arm("new"));
    let (split, handle) = Split::builder()
        .arm("legacy", legacy)
        .arm("new", new)
        .build()
        .unwrap();
    let body = |r| {
        let s = split.clone();
        async move { s.oneshot(r).await.unwrap().headers()["x-arm"].clone() }
    };
    assert_eq!(body(req(Method::GET, "/orders/1")).await, "legacy");
    handle
        .set_rules(&[Rule::path_prefix("/orders", "new")])
        .unwrap();
    assert_eq!(body(req(Method::GET, "/orders/1")).await, "new");
    assert_eq!(body(req(Method::GET, "/orders")).await, "new");
    assert_eq!(body(req(Method::GET, "/ordersx")).await, "legacy");
    assert_eq!(body(req(Method::GET, "/users/1")).await, "legacy");
    handle
        .set_rules(&[
            Rule::path_prefix("/orders", "new"),
            Rule::path_prefix("/users", "new"),
        ])
        .unwrap();
    assert_eq!(body(req(Method::GET, "/users/1")).await, "new");
    assert_eq!(body(req(Method::GET, "/")).await, "legacy");
    assert_eq!(
        handle
            .set_rules(&[Rule::path_prefix("/x", "missing")])
            .unwrap_err()
            .field(),
        "rules"
    );
}

#[tokio::test]
async fn cqrs_method_rules_send_reads_to_replica() {
    let (primary, replica) = (support::arm("primary"), support::arm("replica"));
    let (split, _) = Split::builder()
        .arm("primary", primary.clone())
        .arm("replica", replica.clone())
        .rule(Rule::reads("replica"))
        .build()
        .unwrap();
    for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
        assert_eq!(
            split
                .clone()
                .oneshot(req(m, "/items"))
                .await
                .unwrap()
                .headers()["x-arm"]
                .clone(),
            "replica"
        );
    }
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        assert_eq!(
            split
                .clone()
                .oneshot(req(m, "/items"))
                .await
                .unwrap()
                .headers()["x-arm"]
                .clone(),
            "primary"
        );
    }
    assert_eq!((primary.calls(), replica.calls()), (4, 3));
}

#[tokio::test(start_paused = true)]
async fn blue_green_switch_leaves_in_flight_requests_on_their_arm() {
    let (blue, green) = (support::arm("blue"), support::arm("green"));
    blue.set_otherwise(delay(Duration::from_secs(1)).then(support::named("blue")));
    green.set_otherwise(delay(Duration::from_secs(1)).then(support::named("green")));
    let (split, handle) = Split::builder()
        .arm("blue", blue.clone())
        .arm("green", green.clone())
        .build()
        .unwrap();
    let mut in_flight = Vec::new();
    for _ in 0..100 {
        let mut s = split.clone();
        // The arm is chosen in `call`, before the switch.
        let fut = ServiceExt::<Request<()>>::ready(&mut s)
            .await
            .unwrap()
            .call(req(Method::GET, "/"));
        in_flight.push(tokio::spawn(fut));
    }
    tokio::task::yield_now().await;
    handle.switch_to("green").unwrap();
    let after: Vec<_> = (0..50)
        .map(|_| tokio::spawn(split.clone().oneshot(req(Method::GET, "/"))))
        .collect();
    tokio::time::advance(Duration::from_secs(2)).await;
    for f in in_flight {
        assert_eq!(f.await.unwrap().unwrap().headers()["x-arm"].clone(), "blue");
    }
    for f in after {
        assert_eq!(
            f.await.unwrap().unwrap().headers()["x-arm"].clone(),
            "green"
        );
    }
    assert_eq!((blue.calls(), green.calls()), (100, 50));
}

#[tokio::test]
async fn drain_stops_new_assignments_and_rejects_draining_the_last_arm() {
    let (a, b) = two_arms();
    let (split, handle) = Split::builder()
        .arm("stable", a)
        .arm("canary", b)
        .weights([50, 50])
        .sticky(HeaderKey::new(HeaderName::from_static("x-user")))
        .build()
        .unwrap();
    handle.drain("canary").unwrap();
    assert_eq!(handle.is_drained("canary"), Some(true));
    assert_eq!(handle.share("canary"), Some(0.0));
    for i in 0..1000 {
        let r = Request::get("/")
            .header("x-user", format!("u{i}"))
            .body(())
            .unwrap();
        assert_eq!(split.route(&r).arm, 0);
    }
    assert_eq!(handle.drain("stable").unwrap_err().field(), "weights");
    handle.undrain("canary").unwrap();
    assert_eq!(handle.share("canary"), Some(50.0));
    assert_eq!(handle.set_weights(&[1]).unwrap_err().field(), "weights");
    assert_eq!(handle.set_weights(&[0, 0]).unwrap_err().field(), "weights");
    assert_eq!(handle.switch_to("nope").unwrap_err().field(), "arm");
}

#[tokio::test]
async fn response_header_names_the_arm_only_when_enabled() {
    let (a, b) = two_arms();
    let (plain, _) = Split::builder()
        .arm("stable", a.clone())
        .arm("canary", b.clone())
        .build()
        .unwrap();
    let res = plain.oneshot(req(Method::GET, "/")).await.unwrap();
    assert!(res.headers().get("x-served-by").is_none());
    let (named, _) = Split::builder()
        .arm("stable", a)
        .arm("canary", b)
        .weights([0, 1])
        .response_header(HeaderName::from_static("x-served-by"))
        .build()
        .unwrap();
    let res = named.oneshot(req(Method::GET, "/")).await.unwrap();
    assert_eq!(res.headers()["x-served-by"], "canary");
}

#[tokio::test]
async fn events_and_stats() {
    let events = EventRecorder::new();
    let (a, b) = two_arms();
    b.set_otherwise(status(503));
    let (split, handle) = Split::builder()
        .arm("stable", a)
        .arm("canary", b)
        .weights([0, 1])
        .on_event(events.on())
        .build()
        .unwrap();
    split.clone().oneshot(req(Method::GET, "/")).await.unwrap();
    handle.set_weights(&[1, 0]).unwrap();
    split.clone().oneshot(req(Method::GET, "/")).await.unwrap();
    let seen = events.events::<TrafficEvent>();
    assert_eq!(
        seen,
        vec![
            TrafficEvent::Routed {
                instance: "traffic".into(),
                arm: "canary".into(),
                reason: RouteReason::Random
            },
            TrafficEvent::WeightChanged {
                instance: "traffic".into(),
                weights: vec![1, 0]
            },
            TrafficEvent::Routed {
                instance: "traffic".into(),
                arm: "stable".into(),
                reason: RouteReason::Random
            },
        ]
    );
    let c = handle.stats("canary").unwrap();
    assert_eq!((c.successes, c.failures), (0, 1));
    let s = handle.stats("stable").unwrap();
    assert_eq!((s.successes, s.failures), (1, 0));
}

#[test]
fn builder_validation() {
    let e = Split::builder::<Arm>().build().unwrap_err();
    assert_eq!(e.field(), "arms");
    let e = Split::builder()
        .arm("a", support::arm("a"))
        .arm("a", support::arm("a"))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "arms");
    let e = Split::builder()
        .arm("a", support::arm("a"))
        .weights([1, 2])
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "weights");
    let e = Split::builder()
        .arm("a", support::arm("a"))
        .rule(Rule::reads("b"))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "rules");
}
