//! The client examples: timeout, retry with a budget, client-mode rate limit, breaker and a
//! per-attempt timeout around reqwest and hyper-util, against a real local flaky server.
#![cfg(all(
    feature = "timeout",
    feature = "retry",
    feature = "ratelimit",
    feature = "breaker",
    feature = "reqwest"
))]
// Both examples include `examples/common/client.rs`, what they share.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/reqwest_client.rs"]
mod reqwest_example;

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/hyper_client.rs"]
mod hyper_example;

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use palisade::breaker::State;
use palisade::rejection::{CircuitOpen, Elapsed};
use tower::ServiceExt;

/// One scenario for both clients: `$req(base, path)` builds a GET.
macro_rules! scenario {
    ($client:expr, $breaker:expr, $hits:expr, $base:expr, $req:expr) => {{
        let (client, breaker, hits, base) = ($client, $breaker, $hits, $base);

        // The per-attempt budget (300 ms) is forwarded, encoded by the grpc-go rule.
        let res = client.clone().oneshot($req(&base, "/fast")).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-seen-grpc-timeout"], "300000u");

        // Two 503s are retried; the handler runs exactly 3 times.
        let res = client.clone().oneshot($req(&base, "/flaky")).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(hits.flaky.load(Ordering::SeqCst), 3);

        // Each of 3 attempts times out after 300 ms, with ≤ 200 ms backoff between them (the
        // 2 s deadline caps it all).
        let started = Instant::now();
        let err = client
            .clone()
            .oneshot($req(&base, "/slow"))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(err.is::<Elapsed>(), "{err}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2_500),
            "{took:?}"
        );

        // 3 attempts at an upstream that is down: the 10th attempt in the window is the 8th
        // failure, so the breaker opens...
        assert_eq!(breaker.state(), State::Closed);
        let res = client.clone().oneshot($req(&base, "/down")).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(hits.down.load(Ordering::SeqCst), 3);
        assert_eq!(breaker.state(), State::Open);

        // ...and the next call fails fast without reaching the upstream (its 5 s
        // Retry-After exceeds the retry's 200 ms max backoff, so it is not retried).
        let err = client.oneshot($req(&base, "/down")).await.unwrap_err();
        assert!(err.is::<CircuitOpen>(), "{err}");
        assert_eq!(hits.down.load(Ordering::SeqCst), 3);
    }};
}

#[tokio::test]
async fn reqwest_client_retries_forwards_the_budget_and_breaks() {
    let hits = Arc::new(reqwest_example::common::Hits::default());
    let base = support::serve(reqwest_example::common::upstream(hits.clone())).await;
    let (client, breaker) = reqwest_example::client().unwrap();
    let req = |base: &str, path: &str| {
        reqwest::Request::new(
            reqwest::Method::GET,
            format!("{base}{path}").parse().unwrap(),
        )
    };
    scenario!(client, breaker, hits, base, req);
}

#[tokio::test]
async fn hyper_client_retries_forwards_the_budget_and_breaks() {
    let hits = Arc::new(hyper_example::common::Hits::default());
    let base = support::serve(hyper_example::common::upstream(hits.clone())).await;
    let (client, breaker) = hyper_example::client().unwrap();
    let req = |base: &str, path: &str| {
        http::Request::get(format!("{base}{path}"))
            .body(hyper_example::Body::default())
            .unwrap()
    };
    scenario!(client, breaker, hits, base, req);
}
