//! Per-route Palisade stacks loaded from a TOML file.
//!
//! ```text
//! cargo run --example config --features serde                         # examples/config.toml
//! cargo run --example config --features serde -- path/to/routes.toml  # your file
//! cargo run --example config --features serde -- --selftest           # load, call, check, exit
//! ```
//!
//! A bad value fails at load time with the field's full path and the allowed range, e.g.
//! `invalid configuration `routes./pay.timeout.timeout`: must be between 1ms and 86400s (got 0ns)`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use palisade::ConfigError;
use palisade::prelude::*;
use palisade::timeout::TimeoutConfig;
use serde::Deserialize;
use tower::ServiceBuilder;

/// The whole file: one entry per route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) routes: BTreeMap<String, RouteConfig>,
}

/// One route's layers; an absent section means "no such layer on this route".
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RouteConfig {
    pub(crate) timeout: Option<TimeoutConfig>,
}

/// Parses and validates a config file. Syntax and type errors name the field path
/// (`routes./pay.timeout.timeout`); range checks do too.
pub(crate) fn load(text: &str) -> Result<FileConfig, ConfigError> {
    let de = toml::de::Deserializer::parse(text)
        .map_err(|e| ConfigError::new("<file>", e.to_string()))?;
    let cfg: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(path, e.into_inner().message().to_owned())
    })?;
    for (route, rc) in &cfg.routes {
        if let Some(t) = &rc.timeout {
            t.build()
                .map_err(|e| e.within(&format!("routes.{route}.timeout")))?;
        }
    }
    Ok(cfg)
}

async fn search() -> &'static str {
    tokio::time::sleep(Duration::from_millis(400)).await; // slower than its 250 ms budget
    "results"
}

async fn pay() -> &'static str {
    "paid"
}

/// Builds the router, attaching each route's stack with `route_layer`.
pub(crate) fn router(cfg: &FileConfig) -> Result<Router, ConfigError> {
    let mut app = Router::new();
    for (path, rc) in &cfg.routes {
        let method_router = match path.as_str() {
            "/search" => get(search),
            "/pay" => post(pay),
            other => {
                return Err(ConfigError::new(
                    format!("routes.{other}"),
                    "no handler for this route in the example (known: /search, /pay)",
                ));
            }
        };
        let timeout = rc.timeout.as_ref().map(TimeoutConfig::build).transpose()?;
        // `option_layer` makes an `Either`, whose two arms must share one error type.
        let stack = ServiceBuilder::new()
            .handle_rejections()
            .option_layer(timeout)
            .map_err(BoxError::from);
        app = app.route(path, method_router.route_layer(stack));
    }
    Ok(app)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let selftest = args.iter().any(|a| a == "--selftest");
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml").into());
    let text = std::fs::read_to_string(&path)?;
    let cfg = match load(&text) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    println!("Loaded {} route(s) from {path}:", cfg.routes.len());
    for (route, rc) in &cfg.routes {
        println!("  {route:<10} {rc:?}");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(&cfg)?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("Serving on http://{addr}");

    if selftest {
        let client = reqwest::Client::new();
        let search = client.get(format!("http://{addr}/search")).send().await?;
        println!(
            "GET /search → {} (its 250 ms budget is shorter than the 400 ms handler)",
            search.status()
        );
        let pay = client.post(format!("http://{addr}/pay")).send().await?;
        println!("POST /pay   → {}", pay.status());
        server.abort();
        return Ok(());
    }
    server.await??;
    Ok(())
}
