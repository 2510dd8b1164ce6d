//! Behaviour of the fault layer on paused tokio time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_chaos::error::FaultInjected;
use palisade_chaos::{
    AbortWith, FaultEvent, FaultLayer, FaultSource, HeaderControl, Latency, SkipReason,
};
use palisade_core::GrpcCode;
use palisade_core::key::PeerAddr;
use palisade_test::EventRecorder;
use palisade_test::scripted::{ScriptedService, body};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn events(layer: FaultLayer) -> (FaultLayer, EventRecorder) {
    let log = EventRecorder::new();
    (layer.on_event(log.on::<FaultEvent>()), log)
}

#[tokio::test(start_paused = true)]
async fn delay_then_abort_compose_and_skip_the_handler() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let (layer, log) = events(
        FaultLayer::new()
            .delay(Latency::fixed(MS(300)), 1.0)
            .abort(StatusCode::SERVICE_UNAVAILABLE, 1.0),
    );
    let svc = layer.layer(inner);
    let t0 = Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(t0.elapsed(), MS(300));
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(calls.calls(), 0);
    assert_eq!(
        log.events::<FaultEvent>(),
        vec![
            FaultEvent::Delayed {
                instance: "chaos".into(),
                delay: MS(300),
                source: FaultSource::Configured
            },
            FaultEvent::Aborted {
                instance: "chaos".into(),
                with: AbortWith::Http(StatusCode::SERVICE_UNAVAILABLE),
                source: FaultSource::Configured
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn delayed_request_reaches_the_handler_after_the_delay() {
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let t0 = Instant::now();
    let inner = service_fn(move |_req: Request<()>| {
        *s.lock().unwrap() = Some(t0.elapsed());
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    });
    let layer = FaultLayer::new().delay(Latency::uniform(MS(100), MS(100)), 1.0);
    let res = layer.layer(inner).oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(*seen.lock().unwrap(), Some(MS(100)));
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
}

#[tokio::test(start_paused = true)]
async fn grpc_abort_is_a_trailers_only_status() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let svc = FaultLayer::new()
        .abort_grpc(GrpcCode::Unavailable, 1.0)
        .layer(inner);
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(calls.calls(), 0);

    // An HTTP abort on a gRPC request is mapped (503 → UNAVAILABLE).
    let inner = ScriptedService::otherwise(body("ok"));
    let svc = FaultLayer::new()
        .abort(StatusCode::SERVICE_UNAVAILABLE, 1.0)
        .layer(inner);
    let req = Request::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
}

#[tokio::test(start_paused = true)]
async fn error_fault_fails_without_calling_the_handler() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let layer = FaultLayer::new().error(1.0);
    let handle = layer.handle();
    let err = layer
        .layer(inner)
        .oneshot(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<FaultInjected>());
    assert_eq!(calls.calls(), 0);
    assert_eq!(handle.stats().failed, 1);
    assert_eq!(handle.stats().active, 0);
}

async fn abort_pattern(seed: u64) -> Vec<bool> {
    let inner = ScriptedService::otherwise(body("ok"));
    let mut svc = FaultLayer::new()
        .seed(seed)
        .abort(StatusCode::INTERNAL_SERVER_ERROR, 0.3)
        .layer(inner);
    let mut out = Vec::new();
    for _ in 0..1000 {
        let res = ServiceExt::<Request<()>>::ready(&mut svc)
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        out.push(res.status() == 500);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn seeded_probability_is_reproducible_and_close() {
    let a = abort_pattern(42).await;
    assert_eq!(a, abort_pattern(42).await);
    assert_ne!(a, abort_pattern(43).await);
    let n = a.iter().filter(|x| **x).count();
    assert!((250..350).contains(&n), "{n} of 1000 aborted at 30 %");
}

#[tokio::test(start_paused = true)]
async fn max_active_bounds_faulted_requests_in_flight() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let (layer, log) = events(
        FaultLayer::new()
            .delay(Latency::fixed(Duration::from_secs(1)), 1.0)
            .max_active(2),
    );
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let tasks: Vec<_> = (0..5)
        .map(|_| tokio::spawn(svc.clone().oneshot(Request::new(()))))
        .collect();
    tokio::time::sleep(MS(10)).await;
    // Two are held by their delay; three passed straight through.
    assert_eq!(calls.calls(), 3);
    assert_eq!(handle.stats().active, 2);
    assert_eq!(handle.stats().skipped, 3);
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(calls.calls(), 5);
    assert_eq!(handle.stats().active, 0);
    let skipped = log
        .events::<FaultEvent>()
        .iter()
        .filter(|e| {
            **e == FaultEvent::Skipped {
                instance: "chaos".into(),
                reason: SkipReason::MaxActive,
            }
        })
        .count();
    assert_eq!(skipped, 3);
}

#[tokio::test(start_paused = true)]
async fn kill_switch_stops_injection_for_every_clone() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let layer = FaultLayer::new().abort(StatusCode::BAD_GATEWAY, 1.0);
    let handle = layer.handle();
    let svc = layer.layer(inner);
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        502
    );
    handle.disable();
    assert!(!handle.is_enabled());
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        200
    );
    handle.enable();
    assert_eq!(svc.oneshot(Request::new(())).await.unwrap().status(), 502);
    assert_eq!(calls.calls(), 1);
    assert_eq!(handle.stats().aborted, 2);
}

#[tokio::test(start_paused = true)]
async fn throttle_limits_response_bandwidth() {
    static BODY: [u8; 1600] = [7; 1600];
    let inner = ScriptedService::otherwise(body(&BODY[..]));
    let layer = FaultLayer::new().throttle(NonZeroU64::new(1600).unwrap(), 1.0);
    let handle = layer.handle();
    let res = layer.layer(inner).oneshot(Request::new(())).await.unwrap();
    assert_eq!(handle.stats().active, 1, "the body holds the slot");
    let t0 = Instant::now();
    let mut body = res.into_body();
    let (mut frames, mut bytes) = (0, 0);
    while let Some(frame) = body.frame().await {
        frames += 1;
        bytes += frame.unwrap().into_data().unwrap().len();
    }
    // 100-byte chunks (1/16 s each) for 1 s.
    assert_eq!((frames, bytes), (16, 1600));
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    drop(body);
    assert_eq!(handle.stats().active, 0);
}

fn with_headers(pairs: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder();
    for (k, v) in pairs {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn envoy_headers_choose_the_fault() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let (layer, log) = events(FaultLayer::new().header_control(HeaderControl::new()));
    let svc = layer.layer(inner);

    let t0 = Instant::now();
    let res = svc
        .clone()
        .oneshot(with_headers(&[("x-envoy-fault-delay-request", "200")]))
        .await
        .unwrap();
    assert_eq!((res.status(), t0.elapsed()), (StatusCode::OK, MS(200)));

    let res = svc
        .clone()
        .oneshot(with_headers(&[("x-envoy-fault-abort-request", "418")]))
        .await
        .unwrap();
    assert_eq!(res.status(), 418);

    // Both abort headers: the HTTP one wins.
    let res = svc
        .clone()
        .oneshot(with_headers(&[
            ("x-envoy-fault-abort-grpc-request", "14"),
            ("x-envoy-fault-abort-request", "429"),
        ]))
        .await
        .unwrap();
    assert_eq!(res.status(), 429);

    let res = svc
        .clone()
        .oneshot(with_headers(&[("x-envoy-fault-abort-grpc-request", "8")]))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "8");

    // Percentage 0: never.
    let res = svc
        .clone()
        .oneshot(with_headers(&[
            ("x-envoy-fault-abort-request", "503"),
            ("x-envoy-fault-abort-request-percentage", "0"),
        ]))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Malformed: ignored and reported, never a failure.
    log.clear();
    let res = svc
        .clone()
        .oneshot(with_headers(&[
            ("x-envoy-fault-abort-request", "99"),
            ("x-envoy-fault-delay-request", "-5"),
        ]))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        log.events::<FaultEvent>(),
        vec![
            FaultEvent::InvalidHeader {
                instance: "chaos".into(),
                header: "x-envoy-fault-delay-request"
            },
            FaultEvent::InvalidHeader {
                instance: "chaos".into(),
                header: "x-envoy-fault-abort-request"
            },
        ]
    );
    // 200 ms delay, 418, 429, grpc 8 → the handler ran for the delayed, the 0 % and the
    // malformed requests only.
    assert_eq!(calls.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn envoy_headers_are_ignored_unless_enabled_or_from_untrusted_peers() {
    let abort = [("x-envoy-fault-abort-request", "503")];
    let inner = ScriptedService::otherwise(body("ok"));
    let off = FaultLayer::new().layer(inner.clone());
    assert_eq!(
        off.oneshot(with_headers(&abort)).await.unwrap().status(),
        200
    );

    let control = HeaderControl::new()
        .parse_trusted_peers(["10.0.0.0/8"])
        .unwrap();
    let svc = FaultLayer::new().header_control(control).layer(inner);
    let from = |ip: &str| {
        let mut req = with_headers(&abort);
        req.extensions_mut().insert(PeerAddr(
            format!("{ip}:4000").parse::<SocketAddr>().unwrap(),
        ));
        req
    };
    assert_eq!(
        svc.clone()
            .oneshot(from("203.0.113.9"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        svc.clone()
            .oneshot(with_headers(&abort))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(svc.oneshot(from("10.1.2.3")).await.unwrap().status(), 503);
}

#[tokio::test(start_paused = true)]
async fn header_percentage_is_capped_by_the_configured_maximum() {
    let inner = ScriptedService::otherwise(body("ok"));
    let mut svc = FaultLayer::new()
        .seed(1)
        .header_control(HeaderControl::new().max_percentage(10))
        .layer(inner);
    let mut aborted = 0;
    for _ in 0..1000 {
        let req = with_headers(&[
            ("x-envoy-fault-abort-request", "503"),
            ("x-envoy-fault-abort-request-percentage", "100"),
        ]);
        if ServiceExt::<Request<()>>::ready(&mut svc)
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap()
            .status()
            == 503
        {
            aborted += 1;
        }
    }
    assert!(
        (70..130).contains(&aborted),
        "{aborted} of 1000 at a 10 % cap"
    );
}

#[tokio::test(start_paused = true)]
async fn schedule_window_and_request_budget() {
    let inner = ScriptedService::otherwise(body("ok"));
    let t0 = Instant::now();
    let svc = FaultLayer::new()
        .abort(StatusCode::SERVICE_UNAVAILABLE, 1.0)
        .between(t0 + Duration::from_secs(1), t0 + Duration::from_secs(2))
        .layer(inner.clone());
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        503
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        200,
        "the window is half-open"
    );

    let layer = FaultLayer::new()
        .abort(StatusCode::SERVICE_UNAVAILABLE, 1.0)
        .next_requests(2);
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            svc.clone()
                .oneshot(Request::new(()))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    assert_eq!(handle.remaining(), 0);
}

#[tokio::test(start_paused = true)]
async fn predicate_selects_requests() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let svc = FaultLayer::new()
        .abort(StatusCode::SERVICE_UNAVAILABLE, 1.0)
        .when(|req| req.path().starts_with("/pay"))
        .layer(inner);
    let req = |path: &str| Request::get(path).body(()).unwrap();
    assert_eq!(
        svc.clone().oneshot(req("/pay/1")).await.unwrap().status(),
        503
    );
    assert_eq!(svc.oneshot(req("/health")).await.unwrap().status(), 200);
    assert_eq!(calls.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelled_delayed_request_releases_its_slot() {
    let inner = ScriptedService::otherwise(body("ok"));
    let calls = inner.clone();
    let layer = FaultLayer::new()
        .delay(Latency::fixed(Duration::from_secs(10)), 1.0)
        .max_active(1);
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let fut = svc.clone().oneshot(Request::new(()));
    let res = tokio::time::timeout(MS(100), fut).await;
    assert!(res.is_err());
    assert_eq!(handle.stats().active, 0);
    assert_eq!(calls.calls(), 0);
}
