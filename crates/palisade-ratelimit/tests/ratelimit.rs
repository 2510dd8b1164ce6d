//! Service-level tests under paused time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use palisade_core::key::{ForwardedIp, GlobalKey, HeaderKey, PeerAddr, PeerIp};
use palisade_core::{BoxError, Deadline, HandleRejectionsLayer, KeyError, RateLimited};
use palisade_ratelimit::{Quota, QuotaSet, RateLimitEvent, RateLimitLayer, RateLimitMode};
use palisade_test::scripted::ScriptedResponse;
use palisade_test::{EventRecorder, ScriptedService};
use tokio::time::{Instant, advance};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

type Res = ScriptedResponse;

/// `upstream`, as a service of `Request<()>` only (so `ready()` infers the request type).
fn unit_requests(
    upstream: &ScriptedService,
) -> impl Service<Request<()>, Response = Res, Error = BoxError, Future: Send> + Clone + use<> {
    upstream.clone()
}

fn from_peer(ip: &str) -> Request<()> {
    let mut r = Request::new(());
    r.extensions_mut().insert(PeerAddr(
        format!("{ip}:4000").parse::<SocketAddr>().unwrap(),
    ));
    r
}

async fn admits<S>(svc: &mut S, n: usize, mk: impl Fn() -> Request<()>) -> usize
where
    S: Service<Request<()>, Response = Res, Error = BoxError>,
{
    let mut ok = 0;
    for _ in 0..n {
        match svc.ready().await.unwrap().call(mk()).await {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.is::<RateLimited>(), "unexpected error {e}"),
        }
    }
    ok
}

#[tokio::test(start_paused = true)]
async fn exact_admits_for_rate_and_burst() {
    let upstream = ScriptedService::new();
    let inner = unit_requests(&upstream);
    let layer = RateLimitLayer::new(
        GlobalKey,
        Quota::per_second("default", 10).unwrap().burst(5),
    );
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    assert_eq!(admits(&mut svc, 20, || Request::new(())).await, 5);
    advance(Duration::from_millis(99)).await;
    assert_eq!(admits(&mut svc, 5, || Request::new(())).await, 0);
    advance(Duration::from_millis(1)).await;
    assert_eq!(admits(&mut svc, 5, || Request::new(())).await, 1);
    advance(Duration::from_secs(1)).await; // refills 10 but the bucket holds 5
    assert_eq!(admits(&mut svc, 20, || Request::new(())).await, 5);
    assert_eq!(upstream.calls(), 11);
}

#[tokio::test(start_paused = true)]
async fn multiple_quotas_all_must_pass_and_refusals_consume_nothing() {
    let upstream = ScriptedService::new();
    let inner = unit_requests(&upstream);
    let set = QuotaSet::new([
        Quota::per_second("sec", 3).unwrap(),
        Quota::per_minute("min", 5).unwrap(),
    ])
    .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(GlobalKey, set))
        .service(inner);
    assert_eq!(admits(&mut svc, 10, || Request::new(())).await, 3);
    advance(Duration::from_secs(1)).await;
    // The per-minute quota has 2 left; the per-second one 3.
    let err = loop {
        match svc.ready().await.unwrap().call(Request::new(())).await {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    let rl = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(rl.violated_policies, vec!["min".to_owned()]);
    assert_eq!(upstream.calls(), 5);
    // Refusals by "min" did not spend "sec": after "min" refills one unit (12 s), one passes.
    advance(Duration::from_secs(11)).await;
    assert_eq!(admits(&mut svc, 3, || Request::new(())).await, 1);
    assert_eq!(rl.headers["ratelimit"], "\"sec\";r=1;t=1, \"min\";r=0;t=11");
}

#[tokio::test(start_paused = true)]
async fn headers_on_success_and_on_429_are_byte_exact() {
    let inner = unit_requests(&ScriptedService::new());
    let layer = RateLimitLayer::new(PeerIp, Quota::per_minute("default", 100).unwrap())
        .legacy_headers(true);
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(layer)
        .service(inner);
    for _ in 0..40 {
        svc.clone().oneshot(from_peer("192.0.2.1")).await.unwrap();
    }
    advance(Duration::from_secs(2)).await;
    let res = svc.clone().oneshot(from_peer("192.0.2.1")).await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["ratelimit-policy"].as_bytes(), b"\"default\";q=100;w=60");
    // 41 units spent, 2 s refilled (3.33 units): 62 left, full again in 22.6 s.
    assert_eq!(h["ratelimit"].as_bytes(), b"\"default\";r=62;t=23");
    assert_eq!(h["x-ratelimit-limit"], "100");
    assert_eq!(h["x-ratelimit-remaining"], "62");
    assert_eq!(h["x-ratelimit-reset"], "23");
    for _ in 0..62 {
        assert_eq!(
            svc.clone()
                .oneshot(from_peer("192.0.2.1"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let res = svc.clone().oneshot(from_peer("192.0.2.1")).await.unwrap();
    assert_eq!(res.status(), 429);
    let h = res.headers();
    // Next unit in 0.6 s → Retry-After and t round up to 1.
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["ratelimit"].as_bytes(), b"\"default\";r=0;t=1");
    assert_eq!(h["ratelimit-policy"].as_bytes(), b"\"default\";q=100;w=60");
    assert_eq!(h["cache-control"], "no-store");
    // Another client is unaffected.
    assert_eq!(
        svc.clone()
            .oneshot(from_peer("192.0.2.2"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_value_matches_the_wait() {
    let inner = unit_requests(&ScriptedService::new());
    let layer = RateLimitLayer::new(GlobalKey, Quota::per_minute("slow", 1).unwrap())
        .response_headers(false);
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    let ok = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert!(ok.headers().is_empty());
    advance(Duration::from_millis(4500)).await;
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    let rl = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(rl.retry_after, Duration::from_millis(55_500));
    assert_eq!(rl.headers["ratelimit"], "\"slow\";r=0;t=56");
    assert_eq!(
        palisade_core::retry_after::to_header_value(rl.retry_after),
        "56"
    );
}

#[tokio::test(start_paused = true)]
async fn xff_from_untrusted_peer_does_not_change_the_key() {
    let inner = unit_requests(&ScriptedService::new());
    let key = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
    let layer = RateLimitLayer::new(key, Quota::per_minute("default", 2).unwrap());
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    let spoofed = |n: u32| {
        let mut r = from_peer("198.51.100.7");
        r.headers_mut()
            .insert("x-forwarded-for", format!("203.0.113.{n}").parse().unwrap());
        r
    };
    // Each request claims a different client, but all come from one untrusted peer.
    let mut ok = 0;
    for n in 0..10 {
        if svc.ready().await.unwrap().call(spoofed(n)).await.is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 2);
    // Behind the trusted proxy, the forwarded clients are distinct keys.
    let via_proxy = |n: u32| {
        let mut r = from_peer("10.0.0.1");
        r.headers_mut()
            .insert("x-forwarded-for", format!("203.0.113.{n}").parse().unwrap());
        r
    };
    let mut ok = 0;
    for n in 0..10 {
        if svc.ready().await.unwrap().call(via_proxy(n)).await.is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
}

#[tokio::test(start_paused = true)]
async fn tiers_override_quotas_per_key_and_missing_keys_are_400() {
    let inner = unit_requests(&ScriptedService::new());
    let layer = RateLimitLayer::new(
        HeaderKey::new(http::HeaderName::from_static("x-api-key")),
        Quota::per_minute("free", 2).unwrap(),
    )
    .tier("gold", Quota::per_minute("gold", 5).unwrap());
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    let with_key =
        |k: &'static str| move || Request::get("/").header("x-api-key", k).body(()).unwrap();
    assert_eq!(admits(&mut svc, 10, with_key("anon")).await, 2);
    assert_eq!(admits(&mut svc, 10, with_key("gold")).await, 5);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<KeyError>());
}

#[tokio::test(start_paused = true)]
async fn client_mode_50_calls_at_10_per_second_take_4_seconds() {
    let upstream = ScriptedService::new();
    let inner = unit_requests(&upstream);
    let layer = RateLimitLayer::new(GlobalKey, Quota::per_second("out", 10).unwrap())
        .mode(RateLimitMode::Wait);
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    let start = Instant::now();
    for _ in 0..50 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }
    // 10 at once (the burst), then one every 100 ms.
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    assert_eq!(upstream.calls(), 50);
}

#[tokio::test(start_paused = true)]
async fn client_mode_is_bounded_by_the_deadline() {
    let upstream = ScriptedService::new();
    let inner = unit_requests(&upstream);
    let layer = RateLimitLayer::new(GlobalKey, Quota::per_second("out", 1).unwrap().burst(1))
        .mode(RateLimitMode::Wait);
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    svc.ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    // Next slot in 1 s; a deadline 500 ms away cannot wait for it.
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(500)));
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        err.downcast_ref::<RateLimited>().unwrap().retry_after,
        Duration::from_secs(1)
    );
    // A deadline 2 s away waits the 1 s.
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_secs(2)));
    svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn events_report_allowed_and_limited_with_hashed_keys() {
    let inner = unit_requests(&ScriptedService::new());
    let events = EventRecorder::new();
    let layer =
        RateLimitLayer::new(PeerIp, Quota::per_minute("default", 1).unwrap()).on_event(events.on());
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    svc.ready()
        .await
        .unwrap()
        .call(from_peer("192.0.2.1"))
        .await
        .unwrap();
    svc.ready()
        .await
        .unwrap()
        .call(from_peer("192.0.2.1"))
        .await
        .unwrap_err();
    let log = events.events::<RateLimitEvent>();
    assert_eq!(log.len(), 2);
    let (
        RateLimitEvent::Allowed {
            key_hash: a,
            waited,
            ..
        },
        RateLimitEvent::Limited {
            key_hash: b,
            retry_after,
            violated_policies,
            ..
        },
    ) = (&log[0], &log[1])
    else {
        panic!("unexpected events {log:?}");
    };
    assert_eq!(a, b);
    assert_eq!(*waited, Duration::ZERO);
    assert_eq!(*retry_after, Duration::from_secs(60));
    assert_eq!(violated_policies, &vec!["default".to_owned()]);
    assert!(!format!("{log:?}").contains("192.0.2.1"));
}

#[tokio::test]
async fn poll_ready_follows_the_inner_service_and_clones_share_state() {
    let layer = RateLimitLayer::new(GlobalKey, Quota::per_hour("h", 1).unwrap());
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, Res, _>(layer);
    handle.allow(0);
    tokio_test::assert_pending!(svc.poll_ready());
    handle.allow(1);
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(Request::new(()));
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_response(ScriptedResponse::default());
    let res = fut.await.unwrap();
    assert_eq!(res.headers()["ratelimit"], "\"h\";r=0;t=3600");
    // The quota is spent for every clone: refused without reaching the inner service.
    let mut clone = svc.clone();
    handle.allow(1);
    tokio_test::assert_ready_ok!(clone.poll_ready());
    let err = clone.call(Request::new(())).await.unwrap_err();
    assert!(err.is::<RateLimited>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_exactly_the_burst() {
    let upstream = ScriptedService::new();
    let inner = unit_requests(&upstream);
    let layer = RateLimitLayer::new(GlobalKey, Quota::per_hour("h", 50).unwrap());
    let svc = ServiceBuilder::new().layer(layer).service(inner);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..100 {
                if svc.clone().oneshot(Request::new(())).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 50);
    assert_eq!(upstream.calls(), 50);
}

#[cfg(feature = "reqwest")]
#[tokio::test(start_paused = true)]
async fn client_mode_in_front_of_a_reqwest_style_service() {
    let upstream = service_fn(|_req: reqwest::Request| async {
        let res = Response::builder()
            .header("ratelimit", "\"upstream\";r=7;t=1")
            .body("ok")
            .unwrap();
        Ok::<_, Infallible>(reqwest::Response::from(res))
    });
    let layer = RateLimitLayer::new(GlobalKey, Quota::per_second("out", 10).unwrap().burst(1))
        .mode(RateLimitMode::Wait);
    let mut svc = ServiceBuilder::new().layer(layer).service(upstream);
    let start = Instant::now();
    for _ in 0..5 {
        let req = reqwest::Request::new(
            http::Method::GET,
            "http://example.invalid/".parse().unwrap(),
        );
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        // The upstream's own fields are left alone in client mode.
        assert_eq!(res.headers()["ratelimit"], "\"upstream\";r=7;t=1");
        assert!(res.headers().get("ratelimit-policy").is_none());
    }
    assert_eq!(start.elapsed(), Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn grpc_callers_get_resource_exhausted() {
    let upstream = ScriptedService::new();
    let inner = unit_requests(&upstream);
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(RateLimitLayer::new(
            GlobalKey,
            Quota::per_second("rpc", 1).unwrap(),
        ))
        .service(inner);
    let grpc = || {
        Request::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap()
    };
    assert_eq!(svc.clone().oneshot(grpc()).await.unwrap().status(), 200);
    let res = svc.oneshot(grpc()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "8");
    assert_eq!(res.headers()["grpc-retry-pushback-ms"], "1000");
    assert_eq!(upstream.calls(), 1);
}

/// The `RateLimit` field of a response.
fn limit_field(res: &Res) -> String {
    res.headers()["ratelimit"].to_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn shadow_layer_records_would_limit_and_passes_everything() {
    let upstream = ScriptedService::new();
    let events = EventRecorder::new();
    let layer = RateLimitLayer::new(GlobalKey, Quota::per_minute("default", 2).unwrap())
        .shadow(true)
        .on_event(events.on());
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(unit_requests(&upstream));
    let mut fields = Vec::new();
    for _ in 0..5 {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        fields.push(limit_field(&res.unwrap()));
    }
    assert_eq!(upstream.calls(), 5);
    assert_eq!(
        fields,
        [
            "\"default\";r=1;t=30",
            "\"default\";r=0;t=60",
            // What a refusal would say: the next unit in 30 s.
            "\"default\";r=0;t=30",
            "\"default\";r=0;t=30",
            "\"default\";r=0;t=30",
        ]
    );
    let evs = events.events::<RateLimitEvent>();
    let allowed = evs
        .iter()
        .filter(|e| matches!(e, RateLimitEvent::Allowed { .. }))
        .count();
    let would: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            RateLimitEvent::WouldLimit {
                retry_after,
                policies,
                ..
            } => Some((*retry_after, policies.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(allowed, 2);
    assert_eq!(
        would,
        vec![(Duration::from_secs(30), vec!["default".to_owned()]); 3]
    );
    // Refusals consumed nothing: 30 s later one more unit conforms.
    advance(Duration::from_secs(30)).await;
    svc.ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(events.events::<RateLimitEvent>().len(), 6);
    assert!(matches!(
        events.events::<RateLimitEvent>()[5],
        RateLimitEvent::Allowed { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn shadow_quota_never_refuses_and_counts_as_if_enforced() {
    let upstream = ScriptedService::new();
    let events = EventRecorder::new();
    let set = QuotaSet::new([
        Quota::per_minute("old", 3).unwrap(),
        Quota::per_minute("new", 1).unwrap().shadow(true),
    ])
    .unwrap();
    let layer = RateLimitLayer::new(GlobalKey, set).on_event(events.on());
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(unit_requests(&upstream));
    let mut fields = Vec::new();
    for _ in 0..3 {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        fields.push(limit_field(&res.unwrap()));
    }
    // The shadow quota took its one unit only: its refusals consumed nothing.
    assert_eq!(
        fields,
        [
            "\"old\";r=2;t=20, \"new\";r=0;t=60",
            "\"old\";r=1;t=40, \"new\";r=0;t=60",
            "\"old\";r=0;t=60, \"new\";r=0;t=60",
        ]
    );
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.retry_after, Duration::from_secs(20));
    assert_eq!(limited.violated_policies, ["old"]);
    assert_eq!(upstream.calls(), 3);
    let names: Vec<_> = events
        .events::<RateLimitEvent>()
        .iter()
        .map(|e| match e {
            RateLimitEvent::Allowed { .. } => "allowed".to_owned(),
            RateLimitEvent::WouldLimit {
                policies,
                retry_after,
                ..
            } => format!("would_limit {policies:?} {retry_after:?}"),
            RateLimitEvent::Limited {
                violated_policies, ..
            } => format!("limited {violated_policies:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "allowed",
            "would_limit [\"new\"] 60s",
            "would_limit [\"new\"] 60s",
            "limited [\"old\"]",
        ]
    );
}
