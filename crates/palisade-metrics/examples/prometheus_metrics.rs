//! An axum app with RED metrics per route template and a Prometheus `/metrics` endpoint.
//!
//! `cargo run -p palisade-metrics --example prometheus_metrics --features prometheus,axum` then
//! `curl localhost:8082/users/7` and `curl localhost:8082/metrics`. With `--selftest` it
//! binds a free port, sends a few requests, prints the scrape and exits.

use axum::Router;
use axum::routing::get;
use palisade_core::HandleRejectionsLayer;
use palisade_metrics::{EventMetrics, MetricsLayer, install_prometheus, prometheus_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceBuilder;

async fn fetch(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let selftest = std::env::args().any(|a| a == "--selftest");
    // Install the recorder before serving: handles are cached per route at first use.
    let handle = install_prometheus()?;
    // Every Palisade layer's events → palisade_events_total{layer, event}.
    EventMetrics::install_global();

    let app: Router = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleRejectionsLayer::new())
                .layer(MetricsLayer::new()),
        )
        .merge(prometheus_router(handle));

    let addr = if selftest {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8082"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("metrics on http://{addr}/metrics");
    if !selftest {
        axum::serve(listener, app).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    for id in 1..=3 {
        fetch(addr, &format!("/users/{id}")).await?;
    }
    let scrape = fetch(addr, "/metrics").await?;
    for line in scrape
        .lines()
        .filter(|l| l.starts_with("palisade_requests"))
    {
        println!("{line}");
    }
    Ok(())
}
