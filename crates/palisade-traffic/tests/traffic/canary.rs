//! Canary analysis: promotion when healthy, rollback on errors or latency, under paused time.

use crate::support;

use std::time::Duration;

use http::Request;
use palisade_test::EventRecorder;
use palisade_test::scripted::{delay, status};
use palisade_traffic::{
    CanaryConfig, CanaryController, CanaryState, RollbackReason, Split, SplitHandle, Tick,
    TrafficEvent,
};
use support::Arm;
use tower::ServiceExt;

/// The recorded events other than `Routed` (one per request).
fn transitions(events: &EventRecorder) -> Vec<TrafficEvent> {
    let mut all = events.events::<TrafficEvent>();
    all.retain(|e| !matches!(e, TrafficEvent::Routed { .. }));
    all
}

fn setup() -> (Split<Arm>, SplitHandle, Arm, Arm, EventRecorder) {
    let (stable, canary) = (support::arm("stable"), support::arm("canary"));
    let events = EventRecorder::new();
    let (split, handle) = Split::builder()
        .arm("stable", stable.clone())
        .arm("canary", canary.clone())
        .seed(42)
        .on_event(events.on())
        .build()
        .unwrap();
    (split, handle, stable, canary, events)
}

async fn send(split: &Split<Arm>, n: usize) {
    for _ in 0..n {
        split
            .clone()
            .oneshot(Request::get("/").body(()).unwrap())
            .await
            .unwrap();
    }
}

fn config() -> CanaryConfig {
    let mut c = CanaryConfig::default();
    c.steps = vec![5, 25, 50, 100];
    c.interval = Duration::from_secs(60);
    c.min_samples = 20;
    c.max_error_rate_increase = 0.05;
    c
}

#[tokio::test(start_paused = true)]
async fn healthy_canary_is_promoted_step_by_step() {
    let (split, handle, _stable, canary, events) = setup();
    let mut ctl = CanaryController::start(handle.clone(), "stable", "canary", config()).unwrap();
    assert_eq!(handle.weights(), vec![95, 5]);
    // Too few canary samples: hold.
    assert_eq!(ctl.tick(), Tick::Held { percent: 5 });
    send(&split, 1000).await;
    assert!(canary.calls() >= 20, "{}", canary.calls());
    assert_eq!(ctl.tick(), Tick::Advanced { percent: 25 });
    assert_eq!(handle.weights(), vec![75, 25]);
    send(&split, 200).await;
    assert_eq!(ctl.tick(), Tick::Advanced { percent: 50 });
    send(&split, 100).await;
    assert_eq!(ctl.tick(), Tick::Promoted);
    assert_eq!(handle.weights(), vec![0, 100]);
    assert_eq!(ctl.state(), CanaryState::Promoted);
    assert_eq!(ctl.tick(), Tick::Finished);
    let names: Vec<_> = transitions(&events)
        .iter()
        .map(palisade_core::Event::name)
        .collect();
    assert_eq!(
        names,
        [
            "weight_changed",
            "advanced",
            "weight_changed",
            "advanced",
            "weight_changed",
            "advanced",
            "weight_changed",
            "promoted"
        ]
    );
}

#[test]
fn start_announces_the_first_step() {
    let (_split, handle, _stable, _canary, events) = setup();
    let ctl = CanaryController::start(handle.clone(), "stable", "canary", config()).unwrap();
    assert_eq!(ctl.state(), CanaryState::Progressing { percent: 5 });
    assert_eq!(
        transitions(&events),
        [
            TrafficEvent::WeightChanged {
                instance: "traffic".into(),
                weights: vec![95, 5]
            },
            TrafficEvent::Advanced {
                instance: "traffic".into(),
                arm: "canary".into(),
                percent: 5
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn failing_canary_rolls_back_at_the_first_interval() {
    let (split, handle, stable, canary, events) = setup();
    canary.set_otherwise(status(500));
    let ctl = CanaryController::start(handle.clone(), "stable", "canary", config()).unwrap();
    let run = tokio::spawn(ctl.run());
    send(&split, 1000).await;
    assert!(stable.calls() > 900);
    // Just before the first interval: still at 5 %.
    tokio::time::advance(Duration::from_secs(59)).await;
    tokio::task::yield_now().await;
    assert_eq!(handle.weights(), vec![95, 5]);
    assert!(!run.is_finished());
    tokio::time::advance(Duration::from_secs(1)).await;
    let state = run.await.unwrap();
    let CanaryState::RolledBack(RollbackReason::ErrorRate {
        canary: ce,
        stable: se,
    }) = state
    else {
        panic!("{state:?}")
    };
    assert!((ce - 1.0).abs() < 1e-9 && se == 0.0);
    assert_eq!(handle.weights(), vec![100, 0]);
    let served = canary.calls();
    send(&split, 200).await;
    assert_eq!(canary.calls(), served, "no traffic after rollback");
    assert!(matches!(
        transitions(&events).last(),
        Some(TrafficEvent::RolledBack { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn error_rate_within_threshold_of_stable_still_advances() {
    let (split, handle, stable, canary, _) = setup();
    // Both arms fail the same way: the canary is no worse than stable.
    stable.set_otherwise(status(503));
    canary.set_otherwise(status(503));
    let mut ctl = CanaryController::start(handle, "stable", "canary", config()).unwrap();
    send(&split, 1000).await;
    assert_eq!(ctl.tick(), Tick::Advanced { percent: 25 });
}

#[tokio::test(start_paused = true)]
async fn slow_canary_rolls_back_on_p99() {
    let (split, handle, _stable, canary, _) = setup();
    canary.set_otherwise(delay(Duration::from_millis(500)).then(support::named("canary")));
    let mut c = config();
    c.max_p99 = Some(Duration::from_millis(100));
    let mut ctl = CanaryController::start(handle.clone(), "stable", "canary", c).unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(split.clone().oneshot(Request::get("/").body(()).unwrap())))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(canary.calls() >= 20);
    match ctl.tick() {
        Tick::RolledBack(RollbackReason::Latency { p99, bound }) => {
            assert!(p99 >= Duration::from_millis(500), "{p99:?}");
            assert_eq!(bound, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(handle.weights(), vec![100, 0]);
}

#[test]
fn start_validates() {
    let (_, handle, _, _, _) = setup();
    assert_eq!(
        CanaryController::start(handle.clone(), "stable", "nope", config())
            .unwrap_err()
            .field(),
        "canary"
    );
    assert_eq!(
        CanaryController::start(handle.clone(), "stable", "stable", config())
            .unwrap_err()
            .field(),
        "canary"
    );
    let mut bad = config();
    bad.steps = vec![];
    assert_eq!(
        CanaryController::start(handle, "stable", "canary", bad)
            .unwrap_err()
            .field(),
        "steps"
    );
}

#[tokio::test(start_paused = true)]
async fn single_step_canary_is_promoted() {
    let (split, handle, _stable, _canary, _) = setup();
    let mut c = config();
    c.steps = vec![100];
    let mut ctl = CanaryController::start(handle.clone(), "stable", "canary", c).unwrap();
    assert_eq!(handle.weights(), vec![0, 100]);
    send(&split, 100).await;
    assert_eq!(ctl.tick(), Tick::Promoted);
}

// ---- overrides cannot steer the analysis (issue #15 item 15) ----

use http::HeaderName;
use palisade_core::key::PeerAddr;
use palisade_traffic::OverrideAccess;

fn gated(access: OverrideAccess) -> (Split<Arm>, SplitHandle, Arm, Arm) {
    let (stable, canary) = (support::arm("stable"), support::arm("canary"));
    let (split, handle) = Split::builder()
        .arm("stable", stable.clone())
        .arm("canary", canary.clone())
        .seed(42)
        .override_header(HeaderName::from_static("x-arm"))
        .override_cookie("arm")
        .override_access(access)
        .build()
        .unwrap();
    (split, handle, stable, canary)
}

/// `n` requests forcing the canary by header and cookie, from `peer`.
async fn force_canary(split: &Split<Arm>, n: usize, peer: &str, token: Option<&str>) {
    for i in 0..n {
        let mut b = Request::get("/");
        b = if i % 2 == 0 {
            b.header("x-arm", "canary")
        } else {
            b.header("cookie", "arm=canary")
        };
        if let Some(t) = token {
            b = b.header("x-override-token", t);
        }
        let mut req = b.body(()).unwrap();
        req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
        split.clone().oneshot(req).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_outside_client_cannot_force_a_rollback() {
    let access = OverrideAccess::trusted_peers(["10.0.0.0/8"]).unwrap();
    let (split, handle, _stable, canary) = gated(access);
    let mut ctl = CanaryController::start(handle.clone(), "stable", "canary", config()).unwrap();
    canary.set_otherwise(status(500));
    // 200 requests naming the canary from the internet: the override is ignored, the
    // weights (5 %) route them, and too few reach the canary for a decision.
    force_canary(&split, 200, "198.51.100.7:1", None).await;
    assert!(canary.calls() < 20, "{}", canary.calls());
    assert_eq!(ctl.tick(), Tick::Held { percent: 5 });
    assert_eq!(handle.weights(), vec![95, 5]);
}

#[tokio::test(start_paused = true)]
async fn overridden_requests_never_count_in_the_analysis() {
    let token = "tester-token-0123456789";
    let access =
        OverrideAccess::secret(HeaderName::from_static("x-override-token"), token).unwrap();
    let (split, handle, _stable, canary) = gated(access);
    let mut ctl = CanaryController::start(handle.clone(), "stable", "canary", config()).unwrap();
    // A tester with the secret sends 200 failing requests to the canary by hand: they reach
    // it, but the analysis ignores them (no rollback), ...
    canary.set_otherwise(status(500));
    force_canary(&split, 200, "198.51.100.7:1", Some(token)).await;
    assert_eq!(canary.calls(), 200);
    assert_eq!(ctl.tick(), Tick::Held { percent: 5 });
    // ...and 200 successful ones cannot promote it either.
    canary.set_otherwise(status(200));
    force_canary(&split, 200, "198.51.100.7:1", Some(token)).await;
    assert_eq!(canary.calls(), 400);
    assert_eq!(ctl.tick(), Tick::Held { percent: 5 });
    assert_eq!(handle.weights(), vec![95, 5]);
    // Weighted traffic still counts: enough of it and the healthy canary advances.
    send(&split, 1000).await;
    assert_eq!(ctl.tick(), Tick::Advanced { percent: 25 });
}
