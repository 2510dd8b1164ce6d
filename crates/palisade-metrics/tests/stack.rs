//! Full stacks: HandleRejections → Metrics → (rate limit → breaker →) Timeout → handler,
//! with the layers' events turned into metrics by `EventMetrics`; and Metrics → Idempotency.
//! Exact counts after scripted sequences.

mod common;

use std::time::Duration;

use common::Recording;
use http::{Request, Response};
use palisade_core::event::AnyListener;
use palisade_core::{BoxError, HandleRejectionsLayer, RateLimited};
use palisade_metrics::{EventMetrics, MetricsLayer};
use palisade_timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

async fn handler(
    req: Request<()>,
) -> Result<Response<http_body_util::Empty<bytes::Bytes>>, BoxError> {
    match req.uri().path() {
        "/limited" => Err(RateLimited::new(
            Duration::from_secs(2),
            http::HeaderMap::new(),
            vec!["default".into()],
        )
        .into()),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Response::new(http_body_util::Empty::new()))
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(Response::new(http_body_util::Empty::new()))
        }
    }
}

/// Sends `n` GETs to each `path` in turn; their statuses.
async fn statuses<S, B>(stack: &S, script: &[(&str, usize)]) -> Vec<u16>
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut statuses = Vec::new();
    for &(path, n) in script {
        for _ in 0..n {
            let req = Request::get(path).body(()).unwrap();
            let res = stack.clone().oneshot(req).await.unwrap();
            statuses.push(res.status().as_u16());
        }
    }
    statuses
}

#[tokio::test(start_paused = true)]
async fn ten_ok_three_rate_limited_two_timeouts() {
    let recorder = Recording::start();

    let events = EventMetrics::new();
    let stack = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(MetricsLayer::with_route("api"))
        .layer(TimeoutLayer::new(Duration::from_millis(50)).on_event(move |e| events.on_event(e)))
        .service(service_fn(handler));

    let statuses = statuses(&stack, &[("/ok", 10), ("/limited", 3), ("/slow", 2)]).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 504).count(), 2);

    let snap = recorder.snap();
    assert_eq!(snap.requests("api", "success"), 10);
    assert_eq!(snap.requests("api", "rate_limited"), 3);
    assert_eq!(snap.requests("api", "timeout"), 2);
    assert_eq!(snap.requests("api", "failure"), 0);
    assert_eq!(snap.events("timeout", "elapsed"), 2);
    let mut ms: Vec<u64> = snap
        .durations("api")
        .iter()
        .map(|v| (v * 1000.0).round() as u64)
        .collect();
    ms.sort_unstable();
    let mut want = vec![0; 3];
    want.extend([10; 10]);
    want.extend([50; 2]);
    assert_eq!(ms, want);
}

/// The script through a real stack: 10 ok, 2 timeouts (which open the breaker),
/// 1 call refused by the open breaker, 3 rate limited.
#[tokio::test(start_paused = true)]
async fn ten_ok_two_timeouts_breaker_opened_once_three_rate_limited() {
    use palisade_breaker::{CircuitBreakerLayer, SlidingWindow};
    use palisade_core::key::GlobalKey;
    use palisade_ratelimit::{Quota, RateLimitLayer};

    let recorder = Recording::start();

    let events = EventMetrics::new();
    let stack = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(MetricsLayer::with_route("api"))
        .layer(
            RateLimitLayer::new(GlobalKey, Quota::per_minute("default", 13).unwrap())
                .on_event(events.callback()),
        )
        .layer(
            CircuitBreakerLayer::builder()
                .name("upstream")
                .window(SlidingWindow::Count(12))
                .minimum_calls(12)
                .failure_rate_threshold(10.0)
                .on_event(events.callback())
                .build()
                .unwrap(),
        )
        .layer(TimeoutLayer::new(Duration::from_millis(50)).on_event(events.callback()))
        .service(service_fn(handler));

    let statuses = statuses(&stack, &[("/ok", 10), ("/slow", 2), ("/ok", 1), ("/ok", 3)]).await;
    let mut want = vec![200; 10];
    want.extend([504, 504, 503, 429, 429, 429]);
    assert_eq!(statuses, want);

    let snap = recorder.snap();
    assert_eq!(snap.requests("api", "success"), 10);
    assert_eq!(snap.requests("api", "timeout"), 2);
    assert_eq!(snap.requests("api", "circuit_open"), 1);
    assert_eq!(snap.requests("api", "rate_limited"), 3);
    assert_eq!(snap.requests("api", "failure"), 0);

    let breaker = [("breaker", "upstream")];
    assert!((snap.gauge("palisade_breaker_state", &breaker) - 1.0).abs() < f64::EPSILON);
    let transitions = |from, to| {
        snap.counter(
            "palisade_breaker_transitions_total",
            &[("breaker", "upstream"), ("from", from), ("to", to)],
        )
    };
    assert_eq!(transitions("closed", "open"), 1);
    let decisions = |decision| {
        snap.counter(
            "palisade_ratelimit_decisions_total",
            &[("ratelimit", "ratelimit"), ("decision", decision)],
        )
    };
    assert_eq!(decisions("allowed"), 13);
    assert_eq!(decisions("limited"), 3);
    assert_eq!(snap.events("timeout", "elapsed"), 2);
    assert_eq!(snap.events("breaker", "state_changed"), 1);
    assert_eq!(snap.events("breaker", "rejected"), 1);
    assert_eq!(snap.events("ratelimit", "limited"), 3);
}

/// A response replayed by the idempotency layer is counted as `idempotent_replay`, even a
/// replayed 500.
#[tokio::test]
async fn idempotent_replays_have_their_own_outcome() {
    use http_body_util::Full;
    use palisade_idempotency::{IdempotencyLayer, MemoryStore};

    let recorder = Recording::start();

    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::with_route("charges"))
        .layer(IdempotencyLayer::new(MemoryStore::new()))
        .service(service_fn(
            |req: Request<palisade_idempotency::body::RequestBody<Full<bytes::Bytes>>>| async move {
                let status = if req.uri().path() == "/fail" {
                    500
                } else {
                    201
                };
                Ok::<_, BoxError>(
                    Response::builder()
                        .status(status)
                        .body(Full::new(bytes::Bytes::from_static(b"done")))
                        .unwrap(),
                )
            },
        ));
    let post = |path: &str, key: &str| {
        Request::post(path)
            .header("x-api-key", "client-1")
            .header("idempotency-key", format!("\"{key}\""))
            .body(Full::new(bytes::Bytes::from_static(b"amount=10")))
            .unwrap()
    };
    let mut replayed = Vec::new();
    for (path, key) in [
        ("/charges", "a"),
        ("/charges", "a"),
        ("/charges", "a"),
        ("/charges", "b"),
        ("/fail", "c"),
        ("/fail", "c"),
    ] {
        let res = stack.clone().oneshot(post(path, key)).await.unwrap();
        replayed.push(res.headers().contains_key("idempotent-replayed"));
    }
    assert_eq!(replayed, [false, true, true, false, false, true]);
    assert!(palisade_idempotency::key::IDEMPOTENT_REPLAYED == "idempotent-replayed");

    let snap = recorder.snap();
    assert_eq!(snap.requests("charges", "success"), 2);
    assert_eq!(snap.requests("charges", "idempotent_replay"), 3);
    assert_eq!(snap.requests("charges", "failure"), 1);
}

/// A rate limit in shadow mode lets every request through and counts the refusals it
/// would have made as `decision="would_limit"`.
#[tokio::test(start_paused = true)]
async fn shadow_rate_limit_counts_would_limit() {
    use palisade_core::key::GlobalKey;
    use palisade_ratelimit::{Quota, RateLimitLayer};

    let recorder = Recording::start();
    let events = EventMetrics::new();
    let stack = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(MetricsLayer::with_route("shadow"))
        .layer(
            RateLimitLayer::new(GlobalKey, Quota::per_minute("new-limit", 2).unwrap())
                .name("rollout")
                .shadow(true)
                .on_event(events.callback()),
        )
        .service(service_fn(handler));
    assert_eq!(statuses(&stack, &[("/ok", 5)]).await, vec![200; 5]);
    let snap = recorder.snap();
    let decisions = |decision| {
        snap.counter(
            "palisade_ratelimit_decisions_total",
            &[("ratelimit", "rollout"), ("decision", decision)],
        )
    };
    assert_eq!(decisions("allowed"), 2);
    assert_eq!(decisions("would_limit"), 3);
    assert_eq!(decisions("limited"), 0);
    assert_eq!(snap.requests("shadow", "success"), 5);
}
