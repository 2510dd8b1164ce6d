//! Hedging: a slow first attempt loses to the hedge and is dropped.

use std::time::Duration;

use http::{Request, StatusCode};
use palisade_retry::{HedgeLayer, RetryEvent, TpsBudget};
use palisade_test::scripted::{ScriptedResponse, delay, error, respond};
use palisade_test::{EventRecorder, ScriptedService};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

/// Attempt `n` waits `waits[n]` ms, then answers `statuses[n]` with `n` in `x-attempt`; a
/// 409 is a problem+json "request still in flight" answer, as Palisade's idempotency layer
/// renders it. A call past the script fails.
fn upstream(waits: &[u64], statuses: &[u16]) -> ScriptedService {
    waits.iter().zip(statuses).fold(
        ScriptedService::otherwise(error("call past the script")),
        |up, (&wait, &status)| {
            up.then(
                delay(Duration::from_millis(wait)).then(respond(move |seen| {
                    let mut res = ScriptedResponse::default();
                    *res.status_mut() = StatusCode::from_u16(status)?;
                    let h = res.headers_mut();
                    h.insert("x-attempt", seen.index.into());
                    if status == 409 {
                        h.insert("content-type", "application/problem+json".parse()?);
                    }
                    Ok(res)
                })),
            )
        },
    )
}

/// Which attempt gave this answer.
fn attempt(res: &ScriptedResponse) -> usize {
    res.headers()["x-attempt"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn slow_first_attempt_loses_and_is_dropped() {
    let up = upstream(&[60_000, 10], &[200, 200]);
    let events = EventRecorder::new();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .on_event(events.on())
        .layer(up.clone());
    let start = Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(attempt(&res), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(60));
    assert_eq!(up.calls(), 2);
    // the hedge answered; the stuck loser was dropped unanswered
    assert_eq!(up.cancelled(), [0]);
    assert_eq!(up.in_flight(), 0);
    assert_eq!(
        events.events::<RetryEvent>(),
        [RetryEvent::Hedged {
            instance: "hedge".into(),
            n: 2
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn fast_first_attempt_sends_no_hedge() {
    let up = upstream(&[10, 10], &[200, 200]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50)).layer(svc);
    assert_eq!(attempt(&svc.oneshot(Request::new(())).await.unwrap()), 0);
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn retryable_failure_hedges_at_once() {
    let up = upstream(&[5, 5, 5], &[503, 503, 200]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_secs(10))
        .max_hedged(2)
        .layer(svc);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!((res.status().as_u16(), attempt(&res)), (200, 2));
    assert_eq!(start.elapsed(), Duration::from_millis(15));
    assert_eq!(up.calls(), 3);

    // All copies fail: the last failure is returned.
    let up = upstream(&[5, 5], &[503, 502]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_secs(10)).layer(svc);
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn budget_and_method_gate_hedges() {
    // A withdrawal costs 2, one request deposits 1: no hedge.
    let up = upstream(&[1000, 10], &[200, 200]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .budget(TpsBudget::new(Duration::from_secs(1), 0, 0.5))
        .layer(svc);
    let start = Instant::now();
    assert_eq!(attempt(&svc.oneshot(Request::new(())).await.unwrap()), 0);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(up.calls(), 1);

    // POST is not hedged.
    let up = upstream(&[1000, 10], &[200, 200]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50)).layer(svc);
    let req = Request::post("/pay").body(()).unwrap();
    assert_eq!(attempt(&svc.oneshot(req).await.unwrap()), 0);
    assert_eq!(up.calls(), 1);
}

// ---- learned delay (a latency percentile) ----

use palisade_retry::HedgeBuilder;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// `fast` calls answering in `ms`, then one stuck call, then quick answers (the hedges).
fn script(fast: usize, ms: u64) -> (&'static [u64], &'static [u16]) {
    let mut waits = vec![ms; fast];
    waits.extend([60_000, 5, 5, 5]);
    let statuses = vec![200; waits.len()];
    (
        Box::leak(waits.into_boxed_slice()),
        Box::leak(statuses.into_boxed_slice()),
    )
}

fn learned() -> HedgeBuilder {
    HedgeLayer::builder()
        .percentile(95.0)
        .min_data_points(20)
        .period(Duration::from_secs(10))
}

#[tokio::test(start_paused = true)]
async fn learned_delay_hedges_at_the_percentile_not_before() {
    let (waits, statuses) = script(40, 20);
    let up = upstream(waits, statuses);
    let svc = up.clone();
    let events = EventRecorder::new();
    let layer = learned().on_event(events.on()).build().unwrap();
    let svc = layer.layer(svc);
    // Period 0: 40 calls of 20 ms, one clone after another; nothing is learned yet.
    for _ in 0..40 {
        svc.clone().oneshot(Request::new(())).await.unwrap();
    }
    assert_eq!(layer.current_delay(), None);
    assert!(events.all().is_empty());
    // Period 1 reads period 0: p95 of 20 ms, rounded up to its bucket's top (< 1.6 %).
    tokio::time::advance(Duration::from_secs(10)).await;
    let p95 = layer.current_delay().unwrap();
    assert!(p95 >= MS(20) && p95 <= MS(20) * 1016 / 1000, "{p95:?}");

    let start = Instant::now();
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(attempt(&res), 41, "the hedge answered");
    assert_eq!(up.calls(), 42);
    // The hedge left at p95, not before (tokio's timers tick in whole milliseconds).
    assert_eq!(
        events.events::<RetryEvent>(),
        [RetryEvent::Hedged {
            instance: "hedge".into(),
            n: 2
        }]
    );
    let hedged_at = events.all()[0].at - start;
    assert!(
        hedged_at >= p95 && hedged_at <= p95 + MS(1),
        "{hedged_at:?}"
    );
    assert_eq!(start.elapsed(), hedged_at + MS(5));
}

#[tokio::test(start_paused = true)]
async fn learned_percentile_picks_the_tail() {
    // 90 calls of 10 ms and 10 of 100 ms: p90 is 10 ms, p95 is 100 ms.
    let mut waits = vec![10; 90];
    waits.extend([100; 10]);
    let waits: &'static [u64] = Box::leak(waits.into_boxed_slice());
    let statuses: &'static [u16] = Box::leak(vec![200; 100].into_boxed_slice());
    for (pct, expected) in [(90.0, MS(10)), (95.0, MS(100)), (100.0, MS(100))] {
        let svc = upstream(waits, statuses);
        let layer = learned().percentile(pct).build().unwrap();
        let svc = layer.layer(svc);
        for _ in 0..100 {
            svc.clone().oneshot(Request::new(())).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let d = layer.current_delay().unwrap();
        assert!(
            d >= expected && d <= expected * 1016 / 1000,
            "p{pct}: {d:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn below_min_data_points_nothing_is_hedged() {
    let (waits, statuses) = script(19, 20);
    let up = upstream(waits, statuses);
    let svc = up.clone();
    let layer = learned().build().unwrap();
    let svc = layer.layer(svc);
    for _ in 0..19 {
        svc.clone().oneshot(Request::new(())).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(layer.current_delay(), None);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(attempt(&res), 19, "the stuck call, never hedged");
    assert_eq!(start.elapsed(), MS(60_000));
    assert_eq!(up.calls(), 20);
}

#[tokio::test(start_paused = true)]
async fn the_window_rotates_and_forgets() {
    let (waits, statuses) = script(20, 20);
    let up = upstream(waits, statuses);
    let svc = up.clone();
    let layer = learned().build().unwrap();
    // Two services from one layer, and clones: one histogram.
    let a = layer.layer(svc.clone());
    let b = layer.layer(svc);
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        s.oneshot(Request::new(())).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(layer.current_delay().is_some());
    // The next period saw no call: after two periods the data is forgotten.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(layer.current_delay(), None);
    let start = Instant::now();
    let res = a.oneshot(Request::new(())).await.unwrap();
    assert_eq!(attempt(&res), 20, "not hedged");
    assert_eq!(start.elapsed(), MS(60_000));
    assert_eq!(up.calls(), 21);
}

#[tokio::test(start_paused = true)]
async fn only_successes_and_hedgeable_requests_are_learned() {
    // 503s (retryable failures) and POSTs (not hedgeable) teach nothing.
    let waits: &'static [u64] = Box::leak(vec![10; 40].into_boxed_slice());
    let mut statuses = vec![503; 20];
    statuses.extend([200; 20]);
    let statuses: &'static [u16] = Box::leak(statuses.into_boxed_slice());
    let svc = upstream(waits, statuses);
    let layer = learned().build().unwrap();
    let svc = layer.layer(svc);
    for _ in 0..20 {
        svc.clone().oneshot(Request::new(())).await.unwrap();
    }
    for _ in 0..20 {
        let req = Request::post("/x").body(()).unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(layer.current_delay(), None);
}

#[test]
fn learned_delay_settings_are_validated() {
    let field = |b: HedgeBuilder| b.build().unwrap_err().field().to_owned();
    for bad in [0.0, -1.0, 100.5, f64::NAN, f64::INFINITY] {
        assert_eq!(field(learned().percentile(bad)), "percentile", "{bad}");
    }
    let err = learned().percentile(0.0).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration `percentile`: must be greater than 0 and at most 100, \
         e.g. 95.0 for the 95th percentile (got 0)"
    );
    assert_eq!(field(learned().min_data_points(0)), "min_data_points");
    assert!(
        learned()
            .min_data_points(0)
            .build()
            .unwrap_err()
            .problem()
            .contains("use `delay` for a fixed one")
    );
    assert_eq!(field(learned().period(Duration::ZERO)), "period");
    assert_eq!(field(learned().period(Duration::from_secs(7200))), "period");
    assert_eq!(
        field(learned().min_data_points(1_000_001)),
        "min_data_points"
    );
    assert_eq!(field(learned().delay(Duration::from_secs(3601))), "delay");
    assert!(learned().delay(Duration::from_secs(3600)).build().is_ok());
    // In code, more than ten copies is lowered to ten.
    let layer = HedgeLayer::new(MS(5)).max_hedged(1_000_000);
    assert!(format!("{layer:?}").contains("max_hedged: 10"), "{layer:?}");
    assert!(learned().percentile(100.0).build().is_ok());
    assert!(learned().percentile(0.1).min_data_points(1).build().is_ok());
    // A fixed delay set last wins, and needs no percentile.
    let layer = learned().percentile(-3.0).delay(MS(50)).build().unwrap();
    assert_eq!(layer.current_delay(), Some(MS(50)));
}

// ---- hedging and idempotency (issue #15 item 5) ----

fn keyed(method: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri("/pay")
        .header("idempotency-key", "\"k-1\"")
        .body(())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn only_safe_methods_are_hedged_unless_opted_in() {
    // A keyed POST and a PUT are sent once, even though the first copy is slow.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let up = upstream(&[1000, 10], &[200, 200]);
        let svc = up.clone();
        let svc = HedgeLayer::new(Duration::from_millis(50)).layer(svc);
        let start = Instant::now();
        assert_eq!(attempt(&svc.oneshot(keyed(method)).await.unwrap()), 0);
        assert_eq!(start.elapsed(), Duration::from_secs(1), "{method}");
        assert_eq!(up.calls(), 1, "{method}");
    }
    // Safe methods are hedged.
    for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
        let up = upstream(&[1000, 10], &[200, 200]);
        let svc = up.clone();
        let svc = HedgeLayer::new(Duration::from_millis(50)).layer(svc);
        assert_eq!(attempt(&svc.oneshot(keyed(method)).await.unwrap()), 1);
        assert_eq!(up.calls(), 2, "{method}");
    }
    // The opt-in, in code and in the config (also under its former name).
    let up = upstream(&[1000, 10], &[200, 200]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .hedge_unsafe_methods(true)
        .layer(svc);
    assert_eq!(attempt(&svc.oneshot(keyed("POST")).await.unwrap()), 1);
    assert_eq!(up.calls(), 2);
    let mut cfg = palisade_retry::HedgeConfig::default();
    cfg.delay = Some(Duration::from_millis(50));
    let up = upstream(&[1000, 10], &[200, 200]);
    let svc = up.clone();
    assert_eq!(
        attempt(
            &cfg.build()
                .unwrap()
                .layer(svc)
                .oneshot(keyed("POST"))
                .await
                .unwrap()
        ),
        0
    );
    assert_eq!(up.calls(), 1);
    cfg.hedge_unsafe_methods = true;
    let up = upstream(&[1000, 10], &[200, 200]);
    let svc = up.clone();
    assert_eq!(
        attempt(
            &cfg.build()
                .unwrap()
                .layer(svc)
                .oneshot(keyed("POST"))
                .await
                .unwrap()
        ),
        1
    );
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn in_flight_conflict_from_a_hedge_is_not_final() {
    // The original takes 100 ms and succeeds; the hedge, sent at 50 ms, meets the
    // original's lease at the server and gets 409 at 55 ms. The caller gets the original's
    // 200 at 100 ms, and the 409 triggers no further hedge.
    let up = upstream(&[100, 5, 5], &[200, 409, 200]);
    let svc = up.clone();
    let events = EventRecorder::new();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .hedge_unsafe_methods(true)
        .max_hedged(2)
        .on_event(events.on())
        .layer(svc);
    let start = Instant::now();
    let res = svc.oneshot(keyed("POST")).await.unwrap();
    assert_eq!((res.status().as_u16(), attempt(&res)), (200, 0));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    // a second hedge would be due at 105 ms: the original answered first
    assert_eq!(up.calls(), 2);
    assert_eq!(
        events.events::<RetryEvent>(),
        [RetryEvent::Hedged {
            instance: "hedge".into(),
            n: 2
        }]
    );

    // The other way round: the hedge won the race at the server, the original gets 409.
    let up = upstream(&[60, 30], &[409, 201]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .hedge_unsafe_methods(true)
        .layer(svc);
    let start = Instant::now();
    let res = svc.oneshot(keyed("POST")).await.unwrap();
    assert_eq!((res.status().as_u16(), attempt(&res)), (201, 1));
    assert_eq!(start.elapsed(), Duration::from_millis(80));
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_conflict_with_no_copy_outstanding_is_returned() {
    // Another client holds the key: the only copy's 409 is the answer.
    let up = upstream(&[10, 10], &[409, 200]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .hedge_unsafe_methods(true)
        .layer(svc);
    let res = svc.oneshot(keyed("POST")).await.unwrap();
    assert_eq!((res.status().as_u16(), attempt(&res)), (409, 0));
    assert_eq!(up.calls(), 1);
    // Every copy conflicts: the last conflict is returned once all have answered.
    let up = upstream(&[100, 10], &[409, 409]);
    let svc = up.clone();
    let svc = HedgeLayer::new(Duration::from_millis(50))
        .hedge_unsafe_methods(true)
        .layer(svc);
    let start = Instant::now();
    let res = svc.oneshot(keyed("POST")).await.unwrap();
    assert_eq!((res.status().as_u16(), attempt(&res)), (409, 0));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(up.calls(), 2);
}
