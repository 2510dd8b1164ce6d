//! Serves `/livez`, `/readyz` and `/health` next to an application route.
//!
//! `cargo run -p palisade-health --example health_endpoints --features axum` then
//! `curl -i localhost:8081/readyz`. With `--selftest` it binds a free port, probes itself
//! once and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use palisade_health::{
    CheckOutcome, CircuitState, HealthCheck, HealthRegistry, breaker_check, check_fn,
    saturation_check,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let selftest = std::env::args().any(|a| a == "--selftest");
    let registry = HealthRegistry::new();
    registry.set_service_id("basic-example").set_version("1");
    registry
        .register(
            HealthCheck::new(
                "database:responseTime",
                check_fn(|| async {
                    tokio::time::sleep(Duration::from_millis(5)).await; // a real ping here
                    CheckOutcome::pass()
                }),
            )
            .critical(true)
            .timeout(Duration::from_millis(500))
            .interval(Duration::from_secs(5))
            .component_type("datastore"),
        )?
        .register(HealthCheck::new(
            "payments-breaker:state",
            breaker_check(|| CircuitState::Closed), // `handle.state()` mapped here
        ))?;
    let in_use = Arc::new(AtomicUsize::new(3)); // your bulkhead's permits in use
    let usage = in_use.clone();
    registry.register(HealthCheck::new(
        "bulkhead:utilization",
        saturation_check(move || (usage.load(Ordering::Relaxed), 10), 0.8, 1.0)?,
    ))?;
    let _background = registry.spawn_background();

    let app: Router = Router::new()
        .route("/", get(|| async { "hello" }))
        .merge(registry.router());
    let addr = if selftest {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8081"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("health endpoints on http://{addr}/livez, /readyz, /health");
    if !selftest {
        axum::serve(listener, app).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::time::sleep(Duration::from_millis(50)).await; // let the first checks finish
    for path in ["/livez", "/readyz"] {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        println!("GET {path}\n{out}\n");
    }
    Ok(())
}
