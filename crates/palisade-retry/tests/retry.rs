//! Behaviour of the retry layer against scripted upstreams (paused time, seeded RNG).
#![allow(clippy::unnecessary_wraps)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use palisade_core::{BoxError, Deadline, Elapsed};
use palisade_retry::{
    Backoff, Decision, GiveUpReason, ReplayBody, RetryEvent, RetryLayer, RetryReason,
    RetryThrottle, TpsBudget, predicate_fn,
};
use palisade_test::scripted::{self, ScriptedResponse};
use palisade_test::{CollectBodies, EventRecorder, ScriptedService};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A body delivered in several chunks, with an unknown size; `slow` ones are not ready
/// before each chunk (so the layer reads them in its future, not in `call`), `failing` ones
/// end with an error.
#[derive(Debug, Default)]
struct Chunks {
    parts: VecDeque<Bytes>,
    slow: bool,
    pended: bool,
    failing: bool,
}

impl Chunks {
    fn new(parts: &[&'static str]) -> Self {
        Self {
            parts: parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
            ..Self::default()
        }
    }
    fn slow(mut self, slow: bool) -> Self {
        self.slow = slow;
        self
    }
    fn failing(mut self) -> Self {
        self.failing = true;
        self
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.slow && !self.pended {
            self.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pended = false;
        match self.parts.pop_front() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None if self.failing => Poll::Ready(Some(Err("body broke".into()))),
            None => Poll::Ready(None),
        }
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

type Answer = fn() -> Result<Response<()>, BoxError>;

/// An upstream answering from `script` (the last answer repeats), reading and recording
/// every request body.
fn upstream(script: &[Answer]) -> CollectBodies<ScriptedService> {
    let step = |answer: Answer| scripted::respond(move |_| Ok(answer()?.map(|()| Full::default())));
    let (last, first) = script.split_last().expect("a script");
    let up = first
        .iter()
        .fold(ScriptedService::otherwise(step(*last)), |up, a| {
            up.then(step(*a))
        });
    CollectBodies::new(up)
}

/// The gaps between calls, in milliseconds.
fn gaps(up: &CollectBodies<ScriptedService>) -> Vec<u128> {
    up.inner()
        .requests()
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis())
        .collect()
}

fn status(s: u16) -> Result<Response<()>, BoxError> {
    Ok(Response::builder().status(s).body(()).unwrap())
}
fn ok() -> Result<Response<()>, BoxError> {
    status(200)
}
fn unavailable() -> Result<Response<()>, BoxError> {
    status(503)
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("/x").body(Empty::new()).unwrap()
}

fn base() -> RetryLayer {
    RetryLayer::new().no_budget().seed(7)
}

#[tokio::test(start_paused = true)]
async fn exponential_sequence_is_exact_and_capped() {
    let up = upstream(&[unavailable]);
    let svc = base()
        .max_attempts(6)
        .backoff(Backoff::exponential(MS(100), MS(500)))
        .layer(up.clone());
    let res = svc.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(gaps(&up), [100, 200, 400, 500, 500]);
}

#[tokio::test(start_paused = true)]
async fn constant_sequence_and_events() {
    let up = upstream(&[|| status(502), || status(504), ok]);
    let events = EventRecorder::new();
    let svc = base()
        .max_attempts(5)
        .backoff(Backoff::constant(MS(30)))
        .on_event(events.on())
        .layer(up.clone());
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(gaps(&up), [30, 30]);
    assert_eq!(
        events.events::<RetryEvent>(),
        [
            RetryEvent::Attempt {
                instance: "retry".into(),
                n: 2,
                delay: MS(30),
                reason: RetryReason::Status(StatusCode::BAD_GATEWAY)
            },
            RetryEvent::Attempt {
                instance: "retry".into(),
                n: 3,
                delay: MS(30),
                reason: RetryReason::Status(StatusCode::GATEWAY_TIMEOUT)
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_sequences_match_the_seeded_backoff() {
    for backoff in [
        Backoff::full_jitter(MS(100), MS(1000)),
        Backoff::equal_jitter(MS(100), MS(1000)),
        Backoff::decorrelated_jitter(MS(100), MS(1000)),
    ] {
        let up = upstream(&[unavailable]);
        let events = EventRecorder::new();
        let svc = base()
            .max_attempts(6)
            .backoff(backoff)
            .seed(99)
            .on_event(events.on())
            .layer(up.clone());
        let _ = svc.oneshot(get()).await.unwrap();
        let expected: Vec<Duration> = backoff.delays(99).take(5).collect();
        let got: Vec<Duration> = events
            .events::<RetryEvent>()
            .iter()
            .filter_map(|e| match e {
                RetryEvent::Attempt { delay, .. } => Some(*delay),
                _ => None,
            })
            .collect();
        assert_eq!(got, expected, "{backoff:?}");
        assert_eq!(
            gaps(&up),
            // tokio timers tick in whole milliseconds
            expected
                .iter()
                .map(|d| d.as_nanos().div_ceil(1_000_000))
                .collect::<Vec<_>>()
        );
        assert!(expected.iter().all(|d| *d <= MS(1000)));
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_and_http_date() {
    let up = upstream(&[
        || {
            Ok(Response::builder()
                .status(503)
                .header("retry-after", "2")
                .body(())
                .unwrap())
        },
        || {
            Ok(Response::builder()
                .status(429)
                .header("date", "Wed, 25 Nov 2026 08:00:00 GMT")
                .header("retry-after", "Wed, 25 Nov 2026 08:00:03 GMT")
                .body(())
                .unwrap())
        },
        ok,
    ]);
    let svc = base()
        .backoff(Backoff::constant(MS(10)).multiplier(1.0))
        .backoff(Backoff::exponential(MS(10), Duration::from_secs(5)))
        .layer(up.clone());
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(gaps(&up), [2000, 3000]);
}

#[tokio::test(start_paused = true)]
async fn server_delay_above_max_backoff_gives_up() {
    let up = upstream(&[|| {
        Ok(Response::builder()
            .status(503)
            .header("retry-after", "120")
            .body(())
            .unwrap())
    }]);
    let events = EventRecorder::new();
    let svc = base()
        .backoff(Backoff::exponential(MS(10), Duration::from_secs(5)))
        .on_event(events.on())
        .layer(up.clone());
    let start = Instant::now();
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 503);
    assert_eq!(up.inner().calls(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        events.events::<RetryEvent>(),
        [RetryEvent::GaveUp {
            instance: "retry".into(),
            attempts: 1,
            reason: GiveUpReason::ServerDelayTooLong
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_is_bounded_never_a_panic_or_a_hang() {
    // A Retry-After beyond u64 seconds, or near it: too long for any configured maximum,
    // which is itself capped at one hour even when set to Duration::MAX in code.
    assert_eq!(
        Backoff::exponential(MS(10), Duration::MAX).max(),
        palisade_retry::backoff::MAX_BACKOFF
    );
    fn unavailable_for(secs: &'static str) -> Result<Response<()>, BoxError> {
        Ok(Response::builder()
            .status(503)
            .header("retry-after", secs)
            .body(())
            .unwrap())
    }
    let cases: [(&str, fn() -> Result<Response<()>, BoxError>); 3] = [
        ("beyond u64", || {
            unavailable_for("99999999999999999999999999")
        }),
        ("u64::MAX", || unavailable_for("18446744073709551615")),
        ("one day", || unavailable_for("86401")),
    ];
    for (huge, response) in cases {
        let up = upstream(&[response]);
        let events = EventRecorder::new();
        let svc = base()
            .backoff(Backoff::exponential(MS(10), Duration::MAX))
            .on_event(events.on())
            .layer(up.clone());
        let start = Instant::now();
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), 503, "{huge}");
        assert_eq!(up.inner().calls(), 1, "{huge}");
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(
            events.events::<RetryEvent>(),
            [RetryEvent::GaveUp {
                instance: "retry".into(),
                attempts: 1,
                reason: GiveUpReason::ServerDelayTooLong
            }],
            "{huge}"
        );
    }
}

fn grpc(pushback: Option<&'static str>) -> Result<Response<()>, BoxError> {
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", "14");
    if let Some(p) = pushback {
        b = b.header("grpc-retry-pushback-ms", p);
    }
    Ok(b.body(()).unwrap())
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback() {
    let up = upstream(&[
        || grpc(Some("2000")),
        || grpc(None),
        || {
            Ok(Response::builder()
                .header("grpc-status", "0")
                .body(())
                .unwrap())
        },
    ]);
    let svc = base()
        .max_attempts(4)
        .backoff(Backoff::exponential(MS(100), Duration::from_secs(5)))
        .layer(up.clone());
    let res = svc.oneshot(get()).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "0");
    // exactly the pushback, then backoff restarts from initial
    assert_eq!(gaps(&up), [2000, 100]);

    for bad in [|| grpc(Some("-1")), || grpc(Some("abc")), || grpc(Some(""))] {
        let up = upstream(&[bad, ok]);
        let svc = base().layer(up.clone());
        assert_eq!(
            svc.oneshot(get()).await.unwrap().headers()["grpc-status"],
            "14"
        );
        assert_eq!(up.inner().calls(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn non_retryable_statuses_are_returned() {
    for s in [400u16, 404, 409, 500, 501] {
        let answer: Answer = match s {
            400 => || status(400),
            404 => || status(404),
            409 => || status(409),
            500 => || status(500),
            _ => || status(501),
        };
        let up = upstream(&[answer]);
        let svc = base().layer(up.clone());
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), s);
        assert_eq!(up.inner().calls(), 1, "{s}");
    }
}

#[tokio::test(start_paused = true)]
async fn unsafe_methods_need_a_key_or_opt_in() {
    let post = |key: bool| {
        let mut b = Request::post("/pay");
        if key {
            b = b.header("idempotency-key", "\"k1\"");
        }
        b.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
    };
    // POST without key: sent once.
    let up = upstream(&[unavailable, ok]);
    let svc = base().backoff(Backoff::constant(MS(1))).layer(up.clone());
    assert_eq!(svc.oneshot(post(false)).await.unwrap().status(), 503);
    assert_eq!(up.inner().calls(), 1);
    // POST with Idempotency-Key: retried.
    let up = upstream(&[|| status(502), ok]);
    let svc = base().backoff(Backoff::constant(MS(1))).layer(up.clone());
    assert_eq!(svc.oneshot(post(true)).await.unwrap().status(), 200);
    assert_eq!(up.inner().calls(), 2);
    // PATCH with opt-in: retried.
    let up = upstream(&[unavailable, ok]);
    let svc = base()
        .backoff(Backoff::constant(MS(1)))
        .retry_unsafe_methods(true)
        .layer(up.clone());
    let req = Request::patch("/x").body(Empty::<Bytes>::new()).unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    assert_eq!(up.inner().calls(), 2);
    // PUT and DELETE: retried (idempotent).
    for m in ["PUT", "DELETE"] {
        let up = upstream(&[unavailable, ok]);
        let svc = base().backoff(Backoff::constant(MS(1))).layer(up.clone());
        let req = Request::builder()
            .method(m)
            .uri("/x")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
        assert_eq!(up.inner().calls(), 2, "{m}");
    }
}

#[tokio::test(start_paused = true)]
async fn body_bytes_identical_on_every_attempt() {
    // Ready at once (read in `call`) or streaming (read by the future).
    for slow in [false, true] {
        let up = upstream(&[unavailable, || status(502), ok]);
        let svc = base().backoff(Backoff::constant(MS(5))).layer(up.clone());
        let req = Request::put("/doc")
            .body(Chunks::new(&["hello ", "chunked ", "world"]).slow(slow))
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
        assert_eq!(
            up.bodies(),
            vec![Bytes::from_static(b"hello chunked world"); 3]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn body_read_error_is_returned_without_a_call() {
    for slow in [false, true] {
        let up = upstream(&[ok]);
        let svc = base().layer(up.clone());
        let req = Request::put("/doc")
            .body(Chunks::new(&["partial"]).slow(slow).failing())
            .unwrap();
        let err = svc.oneshot(req).await.unwrap_err();
        assert_eq!(err.to_string(), "body broke");
        assert_eq!(up.inner().calls(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn body_over_limit_is_sent_once() {
    // Unknown size: streamed on from the read prefix.
    for slow in [false, true] {
        let up = upstream(&[unavailable, ok]);
        let events = EventRecorder::new();
        let svc = base()
            .body_limit(10)
            .backoff(Backoff::constant(MS(5)))
            .on_event(events.on())
            .layer(up.clone());
        let req = Request::put("/doc")
            .body(Chunks::new(&["hello ", "chunked ", "world"]).slow(slow))
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 503);
        assert_eq!(up.bodies(), [Bytes::from_static(b"hello chunked world")]);
        assert_eq!(
            events.events::<RetryEvent>(),
            [RetryEvent::BodyTooLarge {
                instance: "retry".into(),
                limit: 10
            }]
        );
    }
    // Known size above the limit: not even read first.
    let up = upstream(&[unavailable, ok]);
    let svc = base().body_limit(10).layer(up.clone());
    let req = Request::put("/doc")
        .body(Full::new(Bytes::from(vec![b'x'; 11])))
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 503);
    assert_eq!(up.bodies(), [Bytes::from(vec![b'x'; 11])]);
    // Exactly at the limit: replayed.
    let up = upstream(&[unavailable, ok]);
    let svc = base().body_limit(10).layer(up.clone());
    let req = Request::put("/doc")
        .body(Full::new(Bytes::from(vec![b'y'; 10])))
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    assert_eq!(up.bodies(), vec![Bytes::from(vec![b'y'; 10]); 2]);
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_retries() {
    let up = upstream(&[unavailable]);
    let events = EventRecorder::new();
    let svc = base()
        .max_attempts(10)
        .backoff(Backoff::exponential(MS(100), Duration::from_secs(5)))
        .on_event(events.on())
        .layer(up.clone());
    let mut req = get();
    req.extensions_mut().insert(Deadline::after(MS(350)));
    let start = Instant::now();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 503);
    // attempts at 0, 100, 300; the next would start at 700 ≥ 350
    assert_eq!(gaps(&up), [100, 200]);
    assert_eq!(start.elapsed(), MS(300));
    assert_eq!(
        events.events::<RetryEvent>().last(),
        Some(&RetryEvent::GaveUp {
            instance: "retry".into(),
            attempts: 3,
            reason: GiveUpReason::Deadline
        })
    );
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_is_retried() {
    // The first call takes a minute, the next ones answer at once.
    let up = CollectBodies::new(
        ScriptedService::new().then(scripted::delay(Duration::from_secs(60)).then_ok()),
    );
    let svc = base()
        .backoff(Backoff::constant(MS(10)))
        .per_attempt_timeout(Duration::from_secs(1))
        .layer(up.clone());
    let start = Instant::now();
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(up.inner().calls(), 2);
    assert_eq!(start.elapsed(), MS(1010));

    // Always slow: the last error is core's Elapsed.
    let up = CollectBodies::new(
        ScriptedService::new().then(scripted::delay(Duration::from_secs(60)).then_ok()),
    );
    let svc = base()
        .max_attempts(1)
        .per_attempt_timeout(Duration::from_secs(1))
        .layer(up.clone());
    let err = svc.oneshot(get()).await.unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn transport_errors_are_retried_up_to_max_attempts() {
    let up = upstream(&[|| Err("connection reset".into())]);
    let events = EventRecorder::new();
    let svc = base()
        .max_attempts(4)
        .backoff(Backoff::constant(MS(1)))
        .on_event(events.on())
        .layer(up.clone());
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(err.to_string(), "connection reset");
    assert_eq!(up.inner().calls(), 4);
    assert_eq!(
        events.events::<RetryEvent>().last(),
        Some(&RetryEvent::Exhausted {
            instance: "retry".into(),
            attempts: 4
        })
    );
}

#[tokio::test(start_paused = true)]
async fn tps_budget_bounds_amplification() {
    // 1000 requests against an always-failing upstream, within one ttl.
    let up = upstream(&[unavailable]);
    let events = EventRecorder::new();
    let layer = RetryLayer::new()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .budget(TpsBudget::new(Duration::from_secs(10), 10, 0.2))
        .on_event(events.on());
    let svc = layer.layer(up.clone());
    for _ in 0..1000 {
        let res = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), 503);
    }
    // requests × (1 + ratio) + min_per_sec × ttl = 1000 × 1.2 + 10 × 10
    assert_eq!(up.inner().calls(), 1300);
    let seen = events.events::<RetryEvent>();
    let refused = seen
        .iter()
        .filter(|e| matches!(e, RetryEvent::BudgetExhausted { .. }))
        .count();
    let exhausted = seen
        .iter()
        .filter(|e| matches!(e, RetryEvent::Exhausted { attempts: 3, .. }))
        .count();
    // every request ends either by max attempts or by the budget
    assert_eq!(refused + exhausted, 1000);
    assert!(refused > 800, "{refused}");
}

#[tokio::test(start_paused = true)]
async fn grpc_throttle_stops_retries_below_half() {
    let up = upstream(&[|| grpc(None)]);
    let svc = RetryLayer::new()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .budget(RetryThrottle::new(10, 0.1))
        .layer(up.clone());
    for _ in 0..10 {
        svc.clone().oneshot(get()).await.unwrap();
    }
    // tokens 10→9 (retry) →8 (retry) →7; 6 (retry) →5 (refused); then 1 attempt each
    assert_eq!(up.inner().calls(), 3 + 2 + 8);
}

#[tokio::test(start_paused = true)]
async fn custom_predicate() {
    let up = upstream(&[|| status(500), ok]);
    let svc = base()
        .backoff(Backoff::constant(MS(1)))
        .predicate(predicate_fn(
            |r: Result<&ScriptedResponse, &BoxError>| match r {
                Ok(res) if res.status() == 500 => Decision::Retry {
                    reason: RetryReason::Status(res.status()),
                    after: None,
                },
                Ok(_) => Decision::Success,
                Err(_) => Decision::Return,
            },
        ))
        .layer(up.clone());
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(up.inner().calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn grpc_retries_carry_previous_attempts() {
    // UNAVAILABLE twice, then OK.
    let unavailable = scripted::respond(|_| {
        let mut res = ScriptedResponse::default();
        let h = res.headers_mut();
        h.insert("content-type", "application/grpc".parse().unwrap());
        h.insert("grpc-status", "14".parse().unwrap());
        Ok(res)
    });
    let up = ScriptedService::new().then(unavailable.times(2));
    let svc = base()
        .max_attempts(4)
        .backoff(Backoff::constant(MS(1)))
        .layer(up.clone());
    let req = Request::post("/pkg.Svc/Get")
        .header("content-type", "application/grpc")
        .header("idempotency-key", "\"k\"")
        .body(Empty::new())
        .unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    let previous: Vec<_> = up
        .requests()
        .iter()
        .map(|r| {
            r.headers
                .get("grpc-previous-rpc-attempts")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(previous, [None, Some("1".to_owned()), Some("2".to_owned())]);
    assert_eq!(up.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn retries_rebuild_the_same_head() {
    #[derive(Clone, Debug, PartialEq)]
    struct Tenant(&'static str);
    type Seen = (
        http::Method,
        http::Uri,
        http::Version,
        http::HeaderMap,
        Option<Tenant>,
        Bytes,
    );
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let up = tower::service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let s = s.clone();
        async move {
            let (p, body) = req.into_parts();
            let body = body.collect().await?.to_bytes();
            let mut seen = s.lock().unwrap();
            let tenant = p.extensions.get::<Tenant>().cloned();
            seen.push((p.method, p.uri, p.version, p.headers, tenant, body));
            if seen.len() < 3 { unavailable() } else { ok() }
        }
    });
    let svc = base().backoff(Backoff::constant(MS(1))).layer(up);
    let mut secret = http::HeaderValue::from_static("Bearer t");
    secret.set_sensitive(true);
    let req = Request::put("https://api.example.com:8443/items/7?v=2")
        .version(http::Version::HTTP_2)
        .header("accept", "application/json")
        .header("x-tag", "a")
        .header("x-tag", "b")
        .header("authorization", secret)
        .extension(Tenant("acme"))
        .body(Full::new(Bytes::from("payload")))
        .unwrap();
    let expected = req.headers().clone();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (method, uri, version, headers, tenant, body) in seen.iter() {
        assert_eq!(method, http::Method::PUT);
        assert_eq!(uri, "https://api.example.com:8443/items/7?v=2");
        assert_eq!(*version, http::Version::HTTP_2);
        assert_eq!(headers, &expected);
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(tenant.as_ref(), Some(&Tenant("acme")));
        assert_eq!(body, "payload");
    }
}

/// Per-host budgets: one host's outage spends its own retries, not another host's.
#[tokio::test(start_paused = true)]
async fn per_host_budgets_keep_one_hosts_outage_from_spending_anothers_retries() {
    use palisade_retry::budget::KeyedBudget;

    for per_host in [true, false] {
        // Reserve of 2 retries per budget, no credit per request.
        let make = || TpsBudget::new(Duration::from_secs(1), 2, 0.0);
        let upstream = ScriptedService::otherwise(scripted::status(503));
        let layer = RetryLayer::new()
            .max_attempts(3)
            .backoff(Backoff::constant(MS(1)));
        let layer = if per_host {
            layer.budget_per_host(KeyedBudget::new(16, Duration::from_secs(60), make))
        } else {
            layer.budget(make())
        };
        let svc = layer.layer(upstream.clone());
        let get = |host: &str| {
            Request::get(format!("http://{host}/"))
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        // Host a fails: 3 attempts, then its budget is spent (1 attempt).
        for _ in 0..2 {
            let res = svc.clone().oneshot(get("a.example")).await.unwrap();
            assert_eq!(res.status(), 503);
        }
        assert_eq!(upstream.calls(), 4);
        // Host b: its own budget (3 attempts), or the spent shared one (1).
        svc.clone().oneshot(get("b.example")).await.unwrap();
        let b_calls = upstream.calls() - 4;
        assert_eq!(
            b_calls,
            if per_host { 3 } else { 1 },
            "per_host = {per_host}"
        );
        let hosts: Vec<_> = upstream
            .requests()
            .iter()
            .map(|s| s.uri.host().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(hosts[4], "b.example");
    }
}
