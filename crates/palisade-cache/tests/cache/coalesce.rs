//! `CoalesceLayer`: one upstream call for concurrent identical requests; cancellation of
//! followers and leaders; failures and large bodies.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_cache::{CoalesceLayer, LeaderFailed};
use palisade_core::CircuitOpen;
use palisade_test::ScriptedService;
use palisade_test::scripted::{self, respond};
use tower::{Layer, ServiceExt};

/// Makes `origin` take `delay` per call, answering `body` with `vary: accept-language` and
/// the request's language in `x-lang`; `fail` makes it return an open circuit instead.
fn slow_origin(
    origin: &ScriptedService,
    delay: Duration,
    body: &'static str,
    fail: bool,
) -> ScriptedService {
    origin.set_otherwise(scripted::delay(delay).then(respond(move |seen| {
        if fail {
            return Err(CircuitOpen::new(None).into());
        }
        let lang = seen
            .headers
            .get("accept-language")
            .map_or("-", |v| v.to_str().unwrap())
            .to_owned();
        Ok(Response::builder()
            .header("vary", "accept-language")
            .header("x-lang", lang)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap())
    })));
    origin.clone()
}

fn get() -> Request<()> {
    Request::get("http://example.com/a").body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_identical_gets_make_one_upstream_call() {
    let origin = ScriptedService::new();
    let svc = CoalesceLayer::new().layer(slow_origin(
        &origin,
        Duration::from_secs(1),
        "shared",
        false,
    ));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let res = svc.oneshot(get()).await.unwrap();
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.unwrap().to_bytes()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "shared");
    }
    assert_eq!(origin.calls(), 1);
    assert_eq!(svc.in_flight(), 0);
    // Later requests are not coalesced with a finished flight.
    svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn cancelled_follower_does_not_cancel_the_leader() {
    let origin = ScriptedService::new();
    let svc = CoalesceLayer::new().layer(slow_origin(&origin, Duration::from_secs(1), "ok", false));
    let leader = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    let follower = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    follower.abort();
    let res = leader.await.unwrap().unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelled_leader_hands_over_to_a_follower() {
    let origin = ScriptedService::new();
    let svc = CoalesceLayer::new().layer(slow_origin(&origin, Duration::from_secs(1), "ok", false));
    let leader = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    let followers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    leader.abort();
    for f in followers {
        let res = tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("follower hangs")
            .unwrap()
            .unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
    assert_eq!(
        origin.calls(),
        2,
        "one new leader, not one call per follower"
    );
}

#[tokio::test(start_paused = true)]
async fn leader_failure_fails_followers_with_its_status() {
    let origin = ScriptedService::new();
    let svc = CoalesceLayer::new().layer(slow_origin(&origin, Duration::from_secs(1), "", true));
    let leader = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    let follower = tokio::spawn(svc.clone().oneshot(get()));
    assert!(leader.await.unwrap().unwrap_err().is::<CircuitOpen>());
    let err = follower.await.unwrap().unwrap_err();
    let failed = err.downcast_ref::<LeaderFailed>().expect("LeaderFailed");
    assert_eq!(failed.status, 503);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn followers_go_alone_over_the_body_bound_or_on_a_vary_mismatch() {
    let origin = ScriptedService::new();
    let svc = CoalesceLayer::new().max_body_bytes(4).layer(slow_origin(
        &origin,
        Duration::from_secs(1),
        "0123456789",
        false,
    ));
    let tasks: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_eq!(
            res.into_body().collect().await.unwrap().to_bytes(),
            "0123456789"
        );
    }
    assert_eq!(origin.calls(), 3);

    let origin = ScriptedService::new();
    let svc = CoalesceLayer::new().layer(slow_origin(&origin, Duration::from_secs(1), "x", false));
    let with = |lang: &str| {
        Request::get("http://example.com/a")
            .header("accept-language", lang)
            .body(())
            .unwrap()
    };
    let en = tokio::spawn(svc.clone().oneshot(with("en")));
    tokio::task::yield_now().await;
    let de = tokio::spawn(svc.clone().oneshot(with("de")));
    let en2 = tokio::spawn(svc.clone().oneshot(with("en")));
    assert_eq!(en.await.unwrap().unwrap().headers()["x-lang"], "en");
    assert_eq!(de.await.unwrap().unwrap().headers()["x-lang"], "de");
    assert_eq!(en2.await.unwrap().unwrap().headers()["x-lang"], "en");
    assert_eq!(origin.calls(), 2);
}
