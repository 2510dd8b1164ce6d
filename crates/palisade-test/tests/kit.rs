//! Behaviour of the kit itself, on paused tokio time.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use palisade_test::Scenario;
use palisade_test::scripted::{ScriptedService, delay, error, hang, ms, ok, respond, status};
use palisade_test::time::{advance_to, settle, since};
use tokio::time::Instant;
use tower::ServiceExt;

#[tokio::test(start_paused = true)]
async fn script_runs_in_order_with_repeats_then_the_fallback() {
    let svc = ScriptedService::otherwise(status(418))
        .then(ok())
        .then(status(503).times(2))
        .then(error("boom"))
        .then(respond(|seen| {
            Ok(Response::new(Full::new(Bytes::from(
                seen.uri.path().to_owned(),
            ))))
        }));
    let mut got = Vec::new();
    for path in ["/a", "/b", "/c", "/d", "/e", "/f"] {
        let req = Request::get(path).body(()).unwrap();
        got.push(match svc.clone().oneshot(req).await {
            Ok(res) => res.status().as_u16().to_string(),
            Err(e) => format!("err {e}"),
        });
    }
    assert_eq!(got, ["200", "503", "503", "err boom", "200", "418"]);
    let seen = svc.requests();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[3].uri.path(), "/d");
    assert_eq!(seen[5].index, 5);
}

#[tokio::test(start_paused = true)]
async fn delays_count_in_flight_and_hang_never_answers() {
    let svc = ScriptedService::new().then(delay(ms(100)).then_ok().times(3));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(Request::new(()))))
        .collect();
    settle().await;
    assert_eq!(svc.in_flight(), 3);
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(since(t0), ms(100));
    assert_eq!((svc.in_flight(), svc.max_in_flight()), (0, 3));

    let svc = ScriptedService::new().then(hang());
    let res = tokio::time::timeout(
        Duration::from_secs(3600),
        svc.clone().oneshot(Request::new(())),
    )
    .await;
    assert!(res.is_err(), "hang answered");
    assert_eq!(svc.in_flight(), 0, "dropping the future ends the call");
    assert_eq!(svc.cancelled(), [0]);
}

#[tokio::test(start_paused = true)]
async fn cancelled_lists_the_calls_dropped_before_answering() {
    let svc = ScriptedService::new()
        .then(delay(ms(100)).then_ok())
        .then(delay(ms(10)).then_ok())
        .then(delay(ms(100)).then_ok());
    let slow = tokio::spawn(svc.clone().oneshot(Request::new(())));
    settle().await;
    // Call 1 answers; then call 2 and call 0, still waiting, are dropped in that order.
    svc.clone().oneshot(Request::new(())).await.unwrap();
    let third = tokio::time::timeout(ms(5), svc.clone().oneshot(Request::new(()))).await;
    assert!(third.is_err(), "call 2 answered early");
    slow.abort();
    settle().await;
    assert_eq!(svc.cancelled(), [2, 0]);
    assert_eq!((svc.calls(), svc.in_flight()), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn a_call_leaves_in_flight_when_it_answers_not_when_its_future_is_dropped() {
    use std::future::Future;
    use tower_service::Service;
    let mut svc = ScriptedService::new().then(delay(ms(10)).then_ok());
    let mut fut = Box::pin(svc.call(Request::new(())));
    assert_eq!(svc.in_flight(), 1);
    let res = std::future::poll_fn(|cx| fut.as_mut().poll(cx)).await;
    assert_eq!(res.unwrap().status(), 200);
    // A layer may release its permit between the answer and dropping the future: the
    // call must not be counted past its answer.
    assert_eq!(svc.in_flight(), 0);
    drop(fut);
    assert_eq!((svc.in_flight(), svc.max_in_flight()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn set_otherwise_changes_the_answer_after_the_script() {
    let svc = ScriptedService::new().then(status(503));
    let mut got = Vec::new();
    for change in [None, None, Some(status(500)), None] {
        if let Some(step) = change {
            svc.set_otherwise(step);
        }
        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        got.push(res.status().as_u16());
    }
    assert_eq!(got, [503, 200, 500, 500]);
}

#[tokio::test(start_paused = true)]
async fn advance_to_moves_the_clock_only_forward() {
    let t0 = Instant::now();
    advance_to(t0 + ms(250)).await;
    assert_eq!(since(t0), ms(250));
    advance_to(t0).await;
    assert_eq!(since(t0), ms(250));
}

#[tokio::test(start_paused = true)]
async fn scenario_sends_at_the_given_instants_and_reports_pending() {
    let svc = ScriptedService::new().then(ok()).then(hang());
    let t0 = Instant::now();
    let table = Scenario::new()
        .at(ms(300), || Request::new(()))
        .at(ms(100), || Request::new(()))
        .settle(Duration::from_secs(1))
        .run(svc.clone())
        .await;
    // Added order is kept in the table; sending order follows the instants: the request at
    // 100 ms got the first step (ok), the one at 300 ms hangs.
    assert_eq!(table, ["pending", "200"]);
    let at: Vec<_> = svc.requests().iter().map(|s| s.at - t0).collect();
    assert_eq!(at, [ms(100), ms(300)]);
}

#[tokio::test(start_paused = true)]
async fn recorded_events_carry_the_instant_they_were_emitted() {
    use palisade_test::EventRecorder;
    #[derive(Debug, Clone)]
    struct Tick;
    impl palisade_core::Event for Tick {
        fn layer(&self) -> &'static str {
            "clock"
        }
        fn name(&self) -> &'static str {
            "tick"
        }
    }
    let rec = EventRecorder::new();
    let listen = rec.on::<Tick>();
    let t0 = Instant::now();
    listen(&Tick);
    tokio::time::advance(ms(250)).await;
    listen(&Tick);
    let at: Vec<Duration> = rec.all().iter().map(|r| r.at - t0).collect();
    assert_eq!(at, [ms(0), ms(250)]);
    assert_eq!(rec.names(), ["clock/tick", "clock/tick"]);
    assert_eq!(
        rec.all()[0].instance,
        "clock",
        "an unnamed instance is named by its layer"
    );
}

#[tokio::test(start_paused = true)]
async fn collect_bodies_records_each_body_and_passes_it_on() {
    use http_body_util::BodyExt;
    use palisade_test::CollectBodies;
    let upstream = CollectBodies::new(ScriptedService::new().then(respond(|_| {
        Ok(Response::new(Full::new(Bytes::from("first"))))
    })));
    let res = upstream
        .clone()
        .oneshot(Request::new(Full::new(Bytes::from_static(b"one"))))
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "first");
    upstream
        .clone()
        .oneshot(Request::new(http_body_util::Empty::<Bytes>::new()))
        .await
        .unwrap();
    assert_eq!(upstream.bodies(), ["one", ""]);
    assert_eq!(upstream.inner().calls(), 2);

    // A body that fails while being read fails the call before the handler sees it.
    struct Broken;
    impl http_body::Body for Broken {
        type Data = Bytes;
        type Error = palisade_core::BoxError;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(Some(Err("body broke".into())))
        }
    }
    let err = upstream
        .clone()
        .oneshot(Request::new(Broken))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "body broke");
    assert_eq!((upstream.bodies().len(), upstream.inner().calls()), (2, 2));
}
