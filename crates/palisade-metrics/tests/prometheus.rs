//! The Prometheus exposition of the RED metrics, rendered and scraped over HTTP.
#![cfg(all(feature = "prometheus", feature = "axum"))]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use palisade_core::{BoxError, Elapsed, HandleRejectionsLayer, RateLimited};
use palisade_metrics::{
    EventMetrics, MetricsLayer, PrometheusService, TEXT_FORMAT, prometheus_builder,
    prometheus_router,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn rendered_text_has_the_expected_series() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    palisade_metrics::describe();

    let svc =
        MetricsLayer::with_route("checkout").layer(service_fn(|req: Request<()>| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match req.uri().path() {
                "/limited" => Err::<http::Response<()>, BoxError>(
                    RateLimited::new(Duration::from_secs(1), http::HeaderMap::new(), vec![]).into(),
                ),
                "/slow" => Err(Elapsed::new(Duration::from_millis(20)).into()),
                _ => Ok(http::Response::new(())),
            }
        }));
    for (path, n) in [("/ok", 10), ("/limited", 3), ("/slow", 2)] {
        for _ in 0..n {
            let _ = svc
                .clone()
                .oneshot(Request::get(path).body(()).unwrap())
                .await;
        }
    }
    EventMetrics::new().record("breaker", "opened");

    let res = PrometheusService::new(handle)
        .oneshot(Request::get("/metrics").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], TEXT_FORMAT);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&body).unwrap();
    for line in [
        "# TYPE palisade_requests_total counter",
        r#"palisade_requests_total{route="checkout",outcome="success"} 10"#,
        r#"palisade_requests_total{route="checkout",outcome="rate_limited"} 3"#,
        r#"palisade_requests_total{route="checkout",outcome="timeout"} 2"#,
        "# TYPE palisade_request_duration_seconds histogram",
        r#"palisade_request_duration_seconds_bucket{route="checkout",le="0.01"} 0"#,
        r#"palisade_request_duration_seconds_bucket{route="checkout",le="0.025"} 15"#,
        r#"palisade_request_duration_seconds_count{route="checkout"} 15"#,
        r#"palisade_requests_in_flight{route="checkout"} 0"#,
        r#"palisade_events_total{layer="breaker",instance="breaker",event="opened"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn scraped_over_http() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let app: Router = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleRejectionsLayer::new())
                .layer(MetricsLayer::new()),
        )
        .merge(prometheus_router(handle));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    async fn fetch(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }
    for id in 1..=3 {
        assert!(
            fetch(addr, &format!("/users/{id}"))
                .await
                .starts_with("HTTP/1.1 200")
        );
    }
    let scrape = fetch(addr, "/metrics").await;
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(
        scrape.contains("content-type: text/plain; version=0.0.4"),
        "{scrape}"
    );
    assert!(
        scrape
            .lines()
            .any(|l| l == r#"palisade_requests_total{route="/users/{id}",outcome="success"} 3"#),
        "{scrape}"
    );
    assert!(
        !scrape.contains("/users/1"),
        "raw path leaked into labels:\n{scrape}"
    );
    server.abort();
}
