//! A tonic client calling the tonic example's server: each rejection arrives as its gRPC status.
#![cfg(feature = "timeout")]

#[allow(dead_code)]
#[path = "../examples/tonic.rs"]
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
