//! Behaviour of the retry layer under paused time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use palisade_core::{BoxError, Deadline};
use palisade_retry::{Backoff, RetryBody, RetryEvent, RetryLayer, Tps};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// An upstream answering with `statuses` in turn (the last one repeats), recording when it
/// was called and with which body.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<Mutex<Vec<(Duration, Bytes)>>>,
}

impl Upstream {
    fn service(
        &self,
        statuses: Vec<(u16, Vec<(&'static str, &'static str)>)>,
    ) -> impl tower::Service<
        Request<RetryBody<Full<Bytes>>>,
        Response = Response<()>,
        Error = BoxError,
        Future = impl Future<Output = Result<Response<()>, BoxError>>,
    > + Clone {
        let calls = self.calls.clone();
        let start = Instant::now();
        service_fn(move |req: Request<RetryBody<Full<Bytes>>>| {
            let calls = calls.clone();
            let statuses = statuses.clone();
            async move {
                let body = req.into_body().collect().await?.to_bytes();
                let n = {
                    let mut c = calls.lock().unwrap();
                    c.push((start.elapsed(), body));
                    c.len() - 1
                };
                let (status, headers) = &statuses[n.min(statuses.len() - 1)];
                let mut res = Response::builder().status(*status).body(()).unwrap();
                for (k, v) in headers {
                    res.headers_mut().insert(*k, HeaderValue::from_static(v));
                }
                Ok(res)
            }
        })
    }
    fn times(&self) -> Vec<Duration> {
        self.calls.lock().unwrap().iter().map(|c| c.0).collect()
    }
    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

fn get() -> Request<Full<Bytes>> {
    Request::get("/x").body(Full::new(Bytes::new())).unwrap()
}

fn layer(attempts: u32, kind: Backoff) -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(attempts)
        .backoff(kind, 100 * MS, 2.0, Duration::from_secs(1))
        .seed(7)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn exponential_delays_are_exact_and_capped() {
    let up = Upstream::default();
    let svc = layer(6, Backoff::Exponential).layer(up.service(vec![(503, vec![])]));
    let res = svc.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 503, "the last response is returned");
    // 0, +100, +200, +400, +800, +1000 (cap)
    assert_eq!(
        up.times(),
        [0u32, 100, 300, 700, 1500, 2500].map(|m| m * MS)
    );
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_within_bounds_and_is_seeded() {
    let run = || async {
        let up = Upstream::default();
        let svc = layer(4, Backoff::FullJitter).layer(up.service(vec![(502, vec![])]));
        svc.oneshot(get()).await.unwrap();
        up.times()
    };
    let a = run().await;
    let b = run().await;
    assert_eq!(a, b, "same seed, same delays");
    let gaps: Vec<_> = a.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    assert!(
        gaps[0] < 100 * MS && gaps[1] < 200 * MS && gaps[2] < 400 * MS,
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_http_date_and_too_long() {
    let up = Upstream::default();
    let svc = layer(3, Backoff::Exponential)
        .layer(up.service(vec![(503, vec![("retry-after", "1")]), (200, vec![])]));
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(up.times(), [Duration::ZERO, 1000 * MS]);

    // HTTP-date 59 s after the response's own Date, but the cap is 1 s: give up at once.
    let up = Upstream::default();
    let svc = layer(3, Backoff::Exponential).layer(up.service(vec![(
        503,
        vec![
            ("retry-after", "Fri, 31 Dec 1999 23:59:59 GMT"),
            ("date", "Fri, 31 Dec 1999 23:59:00 GMT"),
        ],
    )]));
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 503);
    assert_eq!(up.count(), 1);

    // 429 with Retry-After: 0 is retried at once.
    let up = Upstream::default();
    let svc = layer(3, Backoff::Exponential)
        .layer(up.service(vec![(429, vec![("retry-after", "0")]), (200, vec![])]));
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(up.times(), [Duration::ZERO, Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_is_exact_and_negative_stops() {
    let up = Upstream::default();
    let layer = RetryLayer::builder()
        .backoff(Backoff::Exponential, 100 * MS, 2.0, Duration::from_secs(5))
        .build()
        .unwrap();
    let svc = layer.clone().layer(up.service(vec![
        (
            200,
            vec![("grpc-status", "14"), ("grpc-retry-pushback-ms", "2000")],
        ),
        (200, vec![("grpc-status", "0")]),
    ]));
    svc.oneshot(get()).await.unwrap();
    assert_eq!(up.times(), [Duration::ZERO, 2000 * MS]);

    let up = Upstream::default();
    let svc = layer.layer(up.service(vec![(
        200,
        vec![("grpc-status", "14"), ("grpc-retry-pushback-ms", "-1")],
    )]));
    svc.oneshot(get()).await.unwrap();
    assert_eq!(up.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_unless_keyed_or_opted_in() {
    let post = |key: bool| {
        let mut b = Request::post("/pay");
        if key {
            b = b.header("idempotency-key", "\"k1\"");
        }
        b.body(Full::new(Bytes::from_static(b"amount=1"))).unwrap()
    };
    let up = Upstream::default();
    let svc = layer(3, Backoff::Constant).layer(up.service(vec![(503, vec![])]));
    svc.clone().oneshot(post(false)).await.unwrap();
    assert_eq!(up.count(), 1, "POST without a key: sent once");
    svc.oneshot(post(true)).await.unwrap();
    assert_eq!(up.count(), 4, "POST with a key: 3 attempts");

    let up = Upstream::default();
    let svc = RetryLayer::builder()
        .retry_unsafe_methods(true)
        .backoff(Backoff::Constant, MS, 1.0, MS)
        .build()
        .unwrap()
        .layer(up.service(vec![(503, vec![])]));
    svc.oneshot(post(false)).await.unwrap();
    assert_eq!(up.count(), 3, "opted in");
}

#[tokio::test(start_paused = true)]
async fn body_is_replayed_byte_for_byte_and_large_bodies_go_once() {
    let up = Upstream::default();
    let svc = layer(3, Backoff::Constant).layer(up.service(vec![(502, vec![])]));
    let put = Request::builder()
        .method(Method::PUT)
        .uri("/doc")
        .body(Full::new(Bytes::from_static(
            b"the same bytes \x00\xff every time",
        )))
        .unwrap();
    svc.oneshot(put).await.unwrap();
    let calls = up.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|c| c.1 == Bytes::from_static(b"the same bytes \x00\xff every time"))
    );

    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    let up = Upstream::default();
    let svc = RetryLayer::builder()
        .body_limit(10)
        .on_event(move |ev| e.lock().unwrap().push(ev.clone()))
        .build()
        .unwrap()
        .layer(up.service(vec![(502, vec![])]));
    let big = vec![7u8; 100];
    let put = Request::put("/doc")
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    svc.oneshot(put).await.unwrap();
    let calls = up.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "over the limit: sent once");
    assert_eq!(calls[0].1, Bytes::from(big), "the whole body arrived");
    assert_eq!(
        *events.lock().unwrap(),
        [RetryEvent::BodyTooLarge { limit: 10 }]
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_retries() {
    let up = Upstream::default();
    let svc = layer(5, Backoff::Exponential).layer(up.service(vec![(503, vec![])]));
    let mut req = get();
    req.extensions_mut().insert(Deadline::after(150 * MS));
    svc.oneshot(req).await.unwrap();
    // 0 → +100 (50 ms left) → the next 200 ms backoff would end past the deadline.
    assert_eq!(up.times(), [Duration::ZERO, 100 * MS]);
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_is_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = RetryLayer::builder()
        .attempt_timeout(50 * MS)
        .backoff(Backoff::Constant, 10 * MS, 1.0, 10 * MS)
        .build()
        .unwrap()
        .layer(service_fn(move |_r: Request<RetryBody<Full<Bytes>>>| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok::<_, BoxError>(Response::new(()))
            }
        }));
    let started = Instant::now();
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(started.elapsed(), 60 * MS);
}

#[tokio::test(start_paused = true)]
async fn budget_bounds_attempts_against_an_always_failing_upstream() {
    // Budget: ttl 10 s, 10 retries/s reserve, 20% of requests. 1,000 requests, 3 attempts
    // each at most; all within one ttl. Bound: requests × (1 + ratio) + min_per_sec × ttl.
    let up = Upstream::default();
    let exhausted = Arc::new(AtomicU32::new(0));
    let x = exhausted.clone();
    let svc = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::Constant, MS, 1.0, MS)
        .budget(Tps::new(Duration::from_secs(10), 10, 0.2).unwrap())
        .on_event(move |e| {
            if *e == RetryEvent::BudgetExhausted {
                x.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap()
        .layer(up.service(vec![(503, vec![])]));
    for _ in 0..1000 {
        svc.clone().oneshot(get()).await.unwrap();
    }
    let attempts = up.count();
    assert!(attempts <= 1000 + 200 + 100, "{attempts}");
    assert_eq!(
        attempts, 1300,
        "exactly the budget: 100 from the reserve + 200 from deposits"
    );
    assert!(exhausted.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn real_server_fails_twice_then_succeeds_through_hyper_util() {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/flaky",
        get(move || {
            let n = h.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = Client::builder(TokioExecutor::new()).build_http::<RetryBody<Empty<Bytes>>>();
    let svc = RetryLayer::builder()
        .backoff(Backoff::Exponential, 10 * MS, 2.0, Duration::from_secs(1))
        .build()
        .unwrap()
        .layer(client);
    let req = Request::get(format!("http://{addr}/flaky"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
