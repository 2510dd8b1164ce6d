//! `grpc.health.v1` over a real tonic channel, fed by the registry.
#![cfg(feature = "tonic")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use palisade_health::{GrpcHealth, HealthCheck, HealthRegistry, check_sync};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn req(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test]
async fn check_and_watch_follow_the_registry() {
    let db_up = Arc::new(AtomicBool::new(true));
    let flag = db_up.clone();
    let registry = HealthRegistry::new();
    registry
        .register(
            HealthCheck::new(
                "db:responseTime",
                check_sync(move || flag.load(Ordering::SeqCst)),
            )
            .critical(true)
            .interval(Duration::from_millis(1)),
        )
        .unwrap()
        .register(
            HealthCheck::new("cache:responseTime", check_sync(|| false))
                .interval(Duration::from_millis(1)),
        )
        .unwrap();

    let (reporter, health_server) = tonic_health::server::health_reporter();
    let task = GrpcHealth::new(registry.clone())
        .service("echo.Echo", ["db:responseTime"])
        .service("cache.Cache", ["cache:responseTime"])
        .poll_interval(Duration::from_millis(20))
        .spawn(reporter);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        Server::builder()
            .add_service(health_server)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);

    let wait = Duration::from_secs(10);
    let status = |client: &mut HealthClient<Channel>, name: &'static str| {
        let mut client = client.clone();
        async move {
            client
                .check(req(name))
                .await
                .map(|r| ServingStatus::try_from(r.into_inner().status).unwrap())
        }
    };

    // Watch "echo.Echo": first message is the current status.
    let mut watch = client.watch(req("echo.Echo")).await.unwrap().into_inner();
    let first = tokio::time::timeout(wait, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The first message may predate the registry push (tonic-health answers SERVICE_UNKNOWN
    // for a name it does not know yet); wait for SERVING.
    let mut current = ServingStatus::try_from(first.status).unwrap();
    while current != ServingStatus::Serving {
        let m = tokio::time::timeout(wait, watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        current = ServingStatus::try_from(m.status).unwrap();
    }

    assert_eq!(
        status(&mut client, "").await.unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        status(&mut client, "echo.Echo").await.unwrap(),
        ServingStatus::Serving
    );
    // A non-critical failing check leaves its service serving (the overall status is warn).
    assert_eq!(
        status(&mut client, "cache.Cache").await.unwrap(),
        ServingStatus::Serving
    );
    let err = status(&mut client, "nope").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // The critical dependency goes down: Watch sees NOT_SERVING.
    db_up.store(false, Ordering::SeqCst);
    let m = tokio::time::timeout(wait, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        ServingStatus::try_from(m.status).unwrap(),
        ServingStatus::NotServing
    );
    assert_eq!(
        status(&mut client, "").await.unwrap(),
        ServingStatus::NotServing
    );
    assert_eq!(
        status(&mut client, "cache.Cache").await.unwrap(),
        ServingStatus::Serving
    );

    // It recovers, then the service drains: SERVING, then NOT_SERVING everywhere.
    db_up.store(true, Ordering::SeqCst);
    let m = tokio::time::timeout(wait, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        ServingStatus::try_from(m.status).unwrap(),
        ServingStatus::Serving
    );
    registry.set_draining(true);
    let m = tokio::time::timeout(wait, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        ServingStatus::try_from(m.status).unwrap(),
        ServingStatus::NotServing
    );
    assert_eq!(
        status(&mut client, "cache.Cache").await.unwrap(),
        ServingStatus::NotServing
    );

    task.abort();
    server.abort();
}
