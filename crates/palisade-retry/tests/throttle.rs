//! Client-side adaptive throttling against scripted upstreams, on paused time with a
//! seeded RNG.
#![allow(clippy::float_cmp)] // probabilities clamped to exactly 0 or to the cap

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use palisade_core::{BoxError, HandleRejectionsLayer, Throttled};
use palisade_retry::ThrottleEvent;
use palisade_retry::throttle::AdaptiveThrottleLayer;
use palisade_test::scripted::{self, ScriptedResponse, Seen};
use palisade_test::{EventRecorder, ScriptedService};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// An upstream of fixed capacity: it accepts the first `per_second` requests of each
/// second of (paused) time and answers every other one 503.
fn capacity(per_second: u64) -> (ScriptedService, Arc<AtomicU64>) {
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let start = Instant::now();
    let current = Arc::new(Mutex::new((0_u64, 0_u64))); // (second, accepted in it)
    let svc = ScriptedService::otherwise(scripted::respond(move |seen: &Seen| {
        let second = seen.at.duration_since(start).as_secs();
        let mut cur = current.lock().unwrap();
        if cur.0 != second {
            *cur = (second, 0);
        }
        let status = if cur.1 < per_second {
            cur.1 += 1;
            counter.fetch_add(1, Ordering::SeqCst);
            200
        } else {
            503
        };
        let mut res = ScriptedResponse::new(Full::new(Bytes::new()));
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok(res)
    }));
    (svc, accepted)
}

/// Offers one request every `every` for `for_`, one at a time; returns how many were shed
/// locally.
async fn offer<S>(svc: &mut S, every: Duration, for_: Duration) -> u64
where
    S: Service<Request<()>, Error = BoxError>,
{
    let mut shed = 0;
    let end = Instant::now() + for_;
    while Instant::now() < end {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        if let Err(e) = res {
            assert!(e.is::<Throttled>(), "{e}");
            shed += 1;
        }
        tokio::time::advance(every).await;
    }
    shed
}

/// The scenario: the upstream's capacity is a tenth of the offered load, so
/// without the throttle it rejects 90 % of the requests. With it (k = 2), the client sends
/// about 2 × what the upstream accepts. Offered: 200 req/s; capacity: 20 req/s; window
/// 10 s; measured over the last 60 s of 120 s. Tolerance: sent / accepted within 2 ± 10 %.
#[tokio::test(start_paused = true)]
async fn under_a_server_rejecting_90_percent_the_client_sends_k_times_the_accepts() {
    const EVERY: Duration = Duration::from_millis(5);

    // Baseline, no throttle: 90 % rejected.
    let (upstream, accepted) = capacity(20);
    let mut bare = upstream.clone();
    offer(&mut bare, EVERY, Duration::from_secs(10)).await;
    assert_eq!(upstream.calls(), 2000);
    assert_eq!(accepted.load(Ordering::SeqCst), 200);

    for k in [2.0, 1.5] {
        let (upstream, accepted) = capacity(20);
        let layer = AdaptiveThrottleLayer::new()
            .k(k)
            .window(Duration::from_secs(10))
            .buckets(20)
            .seed(42);
        let mut svc = layer.layer(upstream.clone());
        // Warm-up: the window fills and the probability settles.
        offer(&mut svc, EVERY, Duration::from_secs(60)).await;
        let (sent0, acc0) = (upstream.calls() as u64, accepted.load(Ordering::SeqCst));
        let shed = offer(&mut svc, EVERY, Duration::from_secs(60)).await;
        let sent = upstream.calls() as u64 - sent0;
        let acc = accepted.load(Ordering::SeqCst) - acc0;
        assert_eq!(sent + shed, 12_000, "every offered request is sent or shed");
        // The upstream stays (nearly) at capacity, 20/s: a second may fall a few short
        // when the draws shed more than usual in it.
        assert!((1_140..=1_200).contains(&acc), "accepted {acc}");
        let ratio = sent as f64 / acc as f64;
        assert!(
            (ratio - k).abs() <= 0.1 * k,
            "k = {k}: sent {sent}, accepted {acc}, ratio {ratio:.3}"
        );
        println!("k = {k}: sent {sent}, accepted {acc}, shed {shed}, ratio {ratio:.3}");
        let stats = layer.stats();
        assert!(stats.probability > 0.7, "{stats:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_upstream_is_never_throttled_and_recovery_stops_shedding() {
    let upstream = ScriptedService::new();
    let layer = AdaptiveThrottleLayer::new()
        .window(Duration::from_secs(10))
        .seed(7);
    let mut svc = layer.layer(upstream.clone());
    let shed = offer(&mut svc, Duration::from_millis(10), Duration::from_secs(30)).await;
    assert_eq!(shed, 0);
    assert_eq!(upstream.calls(), 3000);
    // 20 buckets of 500 ms; the current one (30.0 s) is empty: 20.5 s to 30 s counted.
    let stats = layer.stats();
    assert_eq!((stats.requests, stats.accepts), (950, 950));
    assert_eq!(stats.probability, 0.0);

    // A total outage of 20 s: shedding starts once the accepts fall below half the
    // requests (5 s in), then nearly everything is shed: about 250 + 1,000.
    upstream.set_otherwise(scripted::status(503));
    let calls = upstream.calls();
    let shed = offer(&mut svc, Duration::from_millis(10), Duration::from_secs(5)).await;
    assert!(shed < 20, "{shed}");
    let shed = offer(&mut svc, Duration::from_millis(10), Duration::from_secs(15)).await;
    assert!(shed > 1_100, "{shed}");
    assert_eq!(upstream.calls() - calls + shed as usize, 2_000);
    // Recovery: from about one request per window, the sent rate grows e-fold about every
    // 6 s (window / k, slowed by accepts leaving the window); within 90 s the accepts are
    // back above half the requests and nothing is shed any more.
    upstream.set_otherwise(scripted::ok());
    offer(&mut svc, Duration::from_millis(10), Duration::from_secs(90)).await;
    let shed = offer(&mut svc, Duration::from_millis(10), Duration::from_secs(10)).await;
    assert_eq!(shed, 0);
    assert_eq!(layer.stats().probability, 0.0);
}

#[tokio::test(start_paused = true)]
async fn shed_requests_emit_events_and_render_as_503_with_the_header() {
    let events = EventRecorder::new();
    let upstream = ScriptedService::otherwise(scripted::status(429));
    let layer = AdaptiveThrottleLayer::new()
        .name("search")
        .max_probability(0.5)
        .seed(3)
        .on_event(events.on());
    let svc = HandleRejectionsLayer::new().layer(layer.layer(upstream.clone()));
    let mut statuses = (0, 0, 0);
    for _ in 0..1000 {
        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        match (
            res.status().as_u16(),
            res.headers().get("x-palisade-throttled"),
        ) {
            (429, None) => statuses.0 += 1,
            (503, Some(v)) if v == "1" => statuses.1 += 1,
            _ => statuses.2 += 1,
        }
    }
    assert_eq!(statuses.2, 0);
    assert_eq!(statuses.0, upstream.calls());
    // Capped at 0.5: about half are still sent, to probe the upstream.
    assert!((400..600).contains(&statuses.1), "{statuses:?}");
    let seen = events.events::<ThrottleEvent>();
    assert_eq!(seen.len(), statuses.1);
    let ThrottleEvent::Throttled {
        instance,
        probability,
        ..
    } = &seen[seen.len() - 1]
    else {
        unreachable!()
    };
    assert_eq!(instance.as_ref(), "search");
    assert_eq!(*probability, 0.5);
}

#[tokio::test(start_paused = true)]
async fn transport_errors_count_as_rejections_server_errors_as_accepts() {
    let layer = AdaptiveThrottleLayer::new().seed(9);
    let failing = layer.layer(ScriptedService::otherwise(scripted::status(500)));
    for _ in 0..100 {
        let res = failing.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), 500);
    }
    assert_eq!(layer.stats().accepts, 100);

    let layer = AdaptiveThrottleLayer::new().seed(9);
    let refused = layer.layer(ScriptedService::otherwise(scripted::error("refused")));
    let mut shed = 0;
    for _ in 0..100 {
        if let Err(e) = refused.clone().oneshot(Request::new(())).await
            && e.is::<Throttled>()
        {
            shed += 1;
        }
    }
    assert!(shed > 80, "{shed}");
    assert_eq!(layer.stats().accepts, 0);
}
