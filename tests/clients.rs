//! The client examples: Palisade around reqwest and hyper-util, against a real local server.
#![cfg(all(feature = "timeout", feature = "reqwest"))]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/reqwest_client.rs"]
mod reqwest_example;

mod support;

use std::time::{Duration, Instant};

use palisade::rejection::Elapsed;
use tower::ServiceExt;

#[tokio::test]
async fn reqwest_client_forwards_the_budget_and_times_out() {
    let base = support::serve(reqwest_example::upstream()).await;
    let client = reqwest_example::client();

    let req = reqwest::Request::new(
        reqwest::Method::GET,
        format!("{base}/fast").parse().unwrap(),
    );
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    // 300 ms budget, encoded by the grpc-go rule (finest unit within 8 digits, rounded up).
    assert_eq!(res.headers()["x-seen-grpc-timeout"], "300000u");

    let started = Instant::now();
    let req = reqwest::Request::new(
        reqwest::Method::GET,
        format!("{base}/slow").parse().unwrap(),
    );
    let err = client.oneshot(req).await.unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/hyper_client.rs"]
mod hyper_example;

#[tokio::test]
async fn hyper_client_forwards_the_budget_and_times_out() {
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use palisade::prelude::*;

    let base = support::serve(hyper_example::upstream()).await;
    let client = tower::ServiceBuilder::new()
        .timeout_with(TimeoutLayer::new(Duration::from_millis(300)).outbound(true))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let req = http::Request::get(format!("{base}/fast"))
        .body(Empty::new())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-seen-grpc-timeout"], "300000u");

    let req = http::Request::get(format!("{base}/slow"))
        .body(Empty::new())
        .unwrap();
    let err = client.oneshot(req).await.unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
}
