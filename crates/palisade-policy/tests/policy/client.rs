//! Client policies per upstream: retry counts, the per-attempt timeout forwarded as
//! `grpc-timeout`, and a breaker per upstream; against an axum upstream in-process (paused
//! time) and over TCP through hyper-util's client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum_core::body::Body;
use palisade_core::{CircuitOpen, Elapsed};
use palisade_policy::{PolicyHandle, PolicySet};
use tower::{Layer, ServiceExt};

const POLICY: &str = r#"
[fallback]

[[clients]]
host = "a.test"
timeout = { timeout = "2s" }
retry = { max_attempts = 3, max_backoff = "100ms", seed = 7 }
breaker = { window = { count = 4 }, minimum_calls = 4, wait_in_open = "1m", max_wait_in_open = "1m" }
attempt_timeout = { timeout = "300ms" }

[[clients]]
host = "t.test"
timeout = { timeout = "1s" }

[[clients]]
host = "b.test"
breaker = { window = { count = 4 }, minimum_calls = 4 }

[[clients]]
host = "a.test"
path_prefix = "/solo"
retry = { max_attempts = 1 }
"#;

#[derive(Default)]
struct Hits {
    flaky: AtomicUsize,
    down: AtomicUsize,
}

/// `/echo` answers with the `grpc-timeout` it saw, `/flaky` fails twice then succeeds,
/// `/down` and `/solo/down` always fail, `/slow` takes 2 s.
fn upstream(hits: Arc<Hits>) -> Router {
    let (h1, h2) = (hits.clone(), hits);
    let down = move || {
        let h = h2.clone();
        async move {
            h.down.fetch_add(1, Ordering::SeqCst);
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    Router::new()
        .route(
            "/echo",
            get(|h: HeaderMap| async move {
                let seen = h
                    .get("grpc-timeout")
                    .map_or("none".into(), |v| v.to_str().unwrap().to_owned());
                ([("x-seen-grpc-timeout", seen)], "ok")
            }),
        )
        .route(
            "/flaky",
            get(move || async move {
                if h1.flaky.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        )
        .route("/down", get(down.clone()))
        .route("/solo/down", get(down))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }),
        )
}

fn get_req(url: &str) -> http::Request<Body> {
    http::Request::get(url).body(Body::empty()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_upstream_gets_its_policy_in_the_client_order() {
    let hits = Arc::new(Hits::default());
    let handle = PolicyHandle::new(PolicySet::from_toml(POLICY).unwrap());
    let client = handle.client_layer().layer(upstream(hits.clone()));
    let call = |url: &str| client.clone().oneshot(get_req(url));

    // The attempt timeout is forwarded (the smaller of 300 ms and the 2 s deadline).
    let res = call("http://a.test/echo").await.unwrap();
    assert_eq!(res.headers()["x-seen-grpc-timeout"], "300000u");
    // No policy for this host: the transport as it is.
    let res = call("http://other.test/echo").await.unwrap();
    assert_eq!(res.headers()["x-seen-grpc-timeout"], "none");

    // Two 503s are retried: the upstream runs exactly 3 times.
    let res = call("http://a.test/flaky").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hits.flaky.load(Ordering::SeqCst), 3);

    // The first attempt at /slow times out after 300 ms and, the attempt timeout being
    // inside the breaker, counts as its 3rd failure in 4 calls: the breaker opens and the
    // retry fails fast instead of waiting out two more attempts.
    let started = tokio::time::Instant::now();
    let err = call("http://a.test/slow").await.unwrap_err();
    assert!(err.is::<CircuitOpen>(), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    // Without a breaker (another host), the 2 s total timeout ends the call.
    let err = call("http://t.test/slow").await.unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");

    // The longest path prefix wins: /solo has no retry, so one attempt.
    let res = call("http://a.test/solo/down").await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(hits.down.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opens_for_its_upstream_only() {
    let hits = Arc::new(Hits::default());
    let handle = PolicyHandle::new(PolicySet::from_toml(POLICY).unwrap());
    let client = handle.client_layer().layer(upstream(hits.clone()));
    let call = |url: &str| client.clone().oneshot(get_req(url));

    // a.test: 3 attempts, then a 4th call's first attempt fills the window: open.
    assert_eq!(call("http://a.test/down").await.unwrap().status(), 503);
    assert_eq!(hits.down.load(Ordering::SeqCst), 3);
    let _ = call("http://a.test/down").await;
    let before = hits.down.load(Ordering::SeqCst);
    let err = call("http://a.test/down").await.unwrap_err();
    assert!(err.is::<CircuitOpen>(), "{err}");
    assert_eq!(hits.down.load(Ordering::SeqCst), before, "fails fast");

    // b.test has its own breaker, still closed.
    assert_eq!(call("http://b.test/down").await.unwrap().status(), 503);
    assert_eq!(hits.down.load(Ordering::SeqCst), before + 1);

    // A reload that leaves a.test's settings alone keeps its open breaker.
    handle
        .reload_str(
            &POLICY.replace("b.test", "c.test"),
            palisade_policy::Format::Toml,
        )
        .unwrap();
    let err = call("http://a.test/down").await.unwrap_err();
    assert!(
        err.is::<CircuitOpen>(),
        "state kept across the reload: {err}"
    );
}

/// The same policy through hyper-util's client over TCP (real time: sockets).
#[tokio::test]
async fn hyper_util_client_over_tcp() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let hits = Arc::new(Hits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, upstream(hits.clone())).into_future());
    let policy = POLICY.replace("host = \"a.test\"", "host = \"127.0.0.1\"");
    let handle = PolicyHandle::new(PolicySet::from_toml(&policy).unwrap());
    let transport = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let client = handle.client_layer().layer(transport);

    let res = client
        .clone()
        .oneshot(get_req(&format!("http://{addr}/echo")))
        .await
        .unwrap();
    let seen = res.headers()["x-seen-grpc-timeout"].to_str().unwrap();
    assert!(seen.ends_with('u') || seen.ends_with('m'), "{seen}");
    let res = client
        .oneshot(get_req(&format!("http://{addr}/flaky")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hits.flaky.load(Ordering::SeqCst), 3);
    server.abort();
}
