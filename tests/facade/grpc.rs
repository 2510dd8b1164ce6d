//! A tonic client calling the tonic example's server: each rejection arrives as its gRPC status.
#![cfg(all(
    feature = "timeout",
    feature = "ratelimit",
    feature = "breaker",
    feature = "bulkhead"
))]

#[allow(dead_code)]
#[path = "../../examples/tonic.rs"]
mod tonic_example;

use std::time::{Duration, Instant};

use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn client() -> HealthClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tonic_example::serve(listener));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

fn check(delay_ms: u64) -> tonic::Request<HealthCheckRequest> {
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    req.metadata_mut()
        .insert("x-demo-delay-ms", delay_ms.to_string().parse().unwrap());
    req
}

#[tokio::test]
async fn serving_status_passes_through_the_stack() {
    let mut c = client().await;
    let res = c.check(check(0)).await.unwrap();
    assert_eq!(res.get_ref().status, 1, "SERVING");
}

#[tokio::test]
async fn server_timeout_is_deadline_exceeded() {
    let mut c = client().await;
    let started = Instant::now();
    let status = c.check(check(2_000)).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(status.message(), "request timed out after 300ms");
    let took = started.elapsed();
    assert!(
        took >= tonic_example::TIMEOUT && took < Duration::from_millis(1_500),
        "{took:?}"
    );
}

#[tokio::test]
async fn unknown_service_is_not_found_untouched_by_palisade() {
    let mut c = client().await;
    let status = c
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

fn keyed(key: &str) -> tonic::Request<HealthCheckRequest> {
    let mut req = check(0);
    req.metadata_mut().insert("x-api-key", key.parse().unwrap());
    req
}

#[tokio::test]
async fn rate_limited_is_resource_exhausted() {
    let mut c = client().await;
    for _ in 0..tonic_example::RATE_PER_MINUTE {
        c.check(keyed("k-rate")).await.unwrap();
    }
    let status = c.check(keyed("k-rate")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    // Another key has its own quota.
    c.check(keyed("k-other")).await.unwrap();
}

#[tokio::test]
async fn bulkhead_full_is_resource_exhausted() {
    let c = client().await;
    // 3 calls of 250 ms (inside the 300 ms timeout) at once, 2 slots: two run, the one that
    // arrives third is shed at once.
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                (c.check(check(250)).await, started.elapsed())
            })
        })
        .collect();
    let mut ok = 0;
    let mut shed = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            (Ok(_), _) => ok += 1,
            (Err(status), took) => shed.push((status.code(), took)),
        }
    }
    assert_eq!(ok, 2, "{shed:?}");
    assert_eq!(shed.len(), 1);
    assert_eq!(shed[0].0, Code::ResourceExhausted);
    assert!(shed[0].1 < Duration::from_millis(200), "{shed:?}");
}

#[tokio::test]
async fn circuit_open_is_unavailable() {
    let mut c = client().await;
    let failing = || {
        let mut req = check(0);
        req.metadata_mut()
            .insert("x-demo-fail", "1".parse().unwrap());
        req
    };
    // 5 failures (the breaker's minimum) open it; each is the handler's own UNAVAILABLE.
    for _ in 0..5 {
        let status = c.check(failing()).await.unwrap_err();
        assert_eq!(status.message(), "demo failure");
    }
    // Now even a healthy call is refused by the breaker, without reaching the service.
    let status = c.check(check(0)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "circuit breaker is open");
}

#[tokio::test]
async fn a_shorter_client_grpc_timeout_wins() {
    let mut c = client().await;
    let mut req = check(2_000);
    req.set_timeout(Duration::from_millis(50));
    let started = Instant::now();
    let status = c.check(req).await.unwrap_err();
    // tonic's client gives up at the same moment (CANCELLED) or the server answers first
    // (DEADLINE_EXCEEDED); either way after ~50 ms, not the server's 300 ms.
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(250));
}
