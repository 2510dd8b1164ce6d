//! Per-route Palisade stacks — every layer — loaded from a TOML file.
//!
//! ```text
//! cargo run --example config --features serde,reqwest                 # examples/config.toml
//! cargo run --example config --features serde,reqwest -- routes.toml  # your file
//! cargo run --example config --features serde,reqwest -- --selftest   # call, check, exit
//! ```
//!
//! Each route may have `rate_limit`, `gate` (a feature flag), `breaker`, `timeout`,
//! `bulkhead`, `idempotency` and `split` sections, each the serde form of that layer's
//! config (`RateLimitConfig`, `BreakerConfig`, …); the `[client]` section configures an
//! outbound reqwest stack (timeout, retry, breaker, client-mode rate limit). A bad value fails
//! at load time with the field's full path, e.g.
//! `invalid configuration `routes./search.breaker.failure_rate_threshold`: must be a percentage in (0, 100] (got 0)`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::routing::{MethodRouter, get, post};
use palisade::ConfigError;
use palisade::bulkhead::BulkheadBody;
use palisade::idempotency::body::ResponseBody;
use palisade::prelude::*;
use palisade::retry::RetryConfig;
use palisade::toggle::{FileProvider, FlagGateLayer, Provider, ToggleConfig};
use palisade::traffic::{Split, SplitConfig};
use serde::Deserialize;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Feature flags for the routes' `gate`s.
    #[serde(default)]
    pub(crate) flags: Option<ToggleConfig>,
    /// One entry per route.
    pub(crate) routes: BTreeMap<String, RouteConfig>,
    /// The outbound client's stack.
    #[serde(default)]
    pub(crate) client: ClientConfig,
}

/// One route's layers; an absent section means "no such layer on this route". The stack is
/// built outermost first in field order (after `HandleRejections`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RouteConfig {
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// A boolean flag of `[flags]`: the route answers 404 while it is off.
    pub(crate) gate: Option<String>,
    pub(crate) breaker: Option<BreakerConfig>,
    pub(crate) timeout: Option<TimeoutConfig>,
    pub(crate) bulkhead: Option<BulkheadConfig>,
    pub(crate) idempotency: Option<IdempotencyConfig>,
    /// Splits the route between the handler's versions `v1` and `v2`.
    pub(crate) split: Option<SplitConfig>,
}

/// The outbound client's layers, outermost first.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ClientConfig {
    pub(crate) timeout: Option<TimeoutConfig>,
    pub(crate) retry: Option<RetryConfig>,
    pub(crate) breaker: Option<BreakerConfig>,
    pub(crate) rate_limit: Option<RateLimitConfig>,
}

/// The outbound client built from `[client]`.
pub(crate) type Client = BoxCloneSyncService<reqwest::Request, reqwest::Response, BoxError>;

/// Everything a file describes, built and validated.
pub(crate) struct Loaded {
    /// The parsed file.
    pub(crate) config: FileConfig,
    /// The server's routes with their stacks.
    pub(crate) router: Router,
    /// The outbound client.
    pub(crate) client: Client,
    /// The flag provider, if the file has `[flags]` (call `watch` to hot-reload).
    pub(crate) flags: Option<FileProvider>,
}

/// Parses a config file. Syntax and type errors name the field path
/// (`routes./pay.timeout.timeout`).
pub(crate) fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    let de = toml::de::Deserializer::parse(text)
        .map_err(|e| ConfigError::new("<file>", e.to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(path, e.into_inner().message().to_owned())
    })
}

/// Parses, validates and builds everything; relative paths (the flag file) are resolved
/// against `dir`. Range checks name the field path too.
pub(crate) fn load(text: &str, dir: &Path) -> Result<Loaded, ConfigError> {
    let mut config = parse(text)?;
    let flags = match &mut config.flags {
        Some(t) => {
            if let Some(file) = &t.file
                && file.is_relative()
            {
                t.file = Some(dir.join(file));
            }
            Some(t.build().map_err(|e| e.within("flags"))?.0)
        }
        None => None,
    };
    let mut router = Router::new();
    for (path, rc) in &config.routes {
        router = router.route(path, route(path, rc, flags.as_ref())?);
    }
    let client = client(&config.client).map_err(|e| e.within("client"))?;
    Ok(Loaded {
        config,
        router,
        client,
        flags,
    })
}

/// Counts `/pay` executions, to show that a replayed payment runs once.
pub(crate) static CHARGES: AtomicUsize = AtomicUsize::new(0);

async fn pay() -> (StatusCode, String) {
    let n = CHARGES.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::CREATED, format!("{{\"charge\":\"ch_{n}\"}}"))
}

async fn search() -> &'static str {
    tokio::time::sleep(Duration::from_millis(400)).await; // slower than its 250 ms budget
    "results"
}

/// The example's handlers, by path.
fn handler(path: &str) -> Result<MethodRouter, ConfigError> {
    Ok(match path {
        "/pay" => post(pay),
        "/search" => get(search),
        "/beta" => get(|| async { "beta" }),
        "/checkout" => get(|| async { "checkout v1" }),
        other => {
            return Err(ConfigError::new(
                format!("routes.{other}"),
                "no handler for this route in the example (known: /pay, /search, /beta, /checkout)",
            ));
        }
    })
}

/// One route: its handler (or a split between two versions) under its stack.
fn route(
    path: &str,
    rc: &RouteConfig,
    flags: Option<&FileProvider>,
) -> Result<MethodRouter, ConfigError> {
    let at = |section: &str| format!("routes.{path}.{section}");
    let rate_limit = section(rc.rate_limit.as_ref(), &at("rate_limit"), |c| {
        c.clone().build()
    })?;
    let gate = match &rc.gate {
        None => None,
        Some(flag) => {
            let at = at("gate");
            let provider = flags.ok_or_else(|| {
                ConfigError::new(at.clone(), "a gated route needs a [flags] section")
            })?;
            if provider.snapshot().get(flag).is_none() {
                return Err(ConfigError::new(
                    at,
                    format!("no flag `{flag}` in the [flags] file"),
                ));
            }
            Some(FlagGateLayer::new(provider.clone(), flag.as_str()))
        }
    };
    let breaker = section(rc.breaker.as_ref(), &at("breaker"), |c| {
        CircuitBreakerLayer::try_from(c.clone())
    })?;
    let timeout = section(rc.timeout.as_ref(), &at("timeout"), TimeoutConfig::build)?;
    // Layers that wrap bodies (the bulkhead releases its permit when the response body
    // ends; idempotency replays the request body and records the response body) are
    // brought back to axum's `Body`, so that both arms of an optional layer have one type.
    let bulkhead =
        section(rc.bulkhead.as_ref(), &at("bulkhead"), |c| c.clone().build())?.map(|layer| {
            ServiceBuilder::new()
                .map_response(|r: Response<BulkheadBody<Body>>| r.map(Body::new))
                .layer(layer)
        });
    let idempotency = section(rc.idempotency.as_ref(), &at("idempotency"), |c| {
        c.clone().build(MemoryStore::new())
    })?
    .map(|layer| {
        ServiceBuilder::new()
            .map_response(|r: Response<ResponseBody<Body>>| r.map(Body::new))
            .idempotency_with(layer)
    });
    // `option_layer` makes an `Either`, whose two arms must share one error type: every
    // Palisade layer fails with `BoxError`, so the handler's `Infallible` is boxed too.
    let stack = ServiceBuilder::new()
        .handle_rejections()
        .option_layer(rate_limit)
        .option_layer(gate)
        .option_layer(breaker)
        .option_layer(timeout)
        .option_layer(bulkhead)
        .option_layer(idempotency)
        .map_err(BoxError::from);
    let endpoint = handler(path)?;
    Ok(match &rc.split {
        None => endpoint.route_layer(stack),
        Some(split) => {
            let v2: MethodRouter = get(|| async { "checkout v2" });
            let (split, _handle) = Split::builder()
                .arm("v1", endpoint)
                .arm("v2", v2)
                .with_config(split.clone())
                .and_then(palisade::traffic::SplitBuilder::build)
                .map_err(|e| e.within(&at("split")))?;
            MethodRouter::new().fallback_service(stack.service(split))
        }
    })
}

/// Builds an optional section; an error's field path gets `at` in front.
fn section<C, L>(
    config: Option<&C>,
    at: &str,
    build: impl FnOnce(&C) -> Result<L, ConfigError>,
) -> Result<Option<L>, ConfigError> {
    config.map(build).transpose().map_err(|e| e.within(at))
}

/// The outbound client: timeout → retry → breaker → rate limit → `reqwest::Client`.
fn client(cc: &ClientConfig) -> Result<Client, ConfigError> {
    let timeout = section(cc.timeout.as_ref(), "timeout", |t| {
        t.build().map(|l| l.outbound(true))
    })?;
    let retry = section(cc.retry.as_ref(), "retry", RetryConfig::build)?;
    let breaker = section(cc.breaker.as_ref(), "breaker", |c| {
        CircuitBreakerLayer::try_from(c.clone())
    })?;
    let rate_limit = section(cc.rate_limit.as_ref(), "rate_limit", |c| c.clone().build())?;
    let stack = ServiceBuilder::new()
        .option_layer(timeout)
        .option_layer(retry)
        .option_layer(breaker)
        .option_layer(rate_limit)
        .map_err(BoxError::from)
        .service(reqwest::Client::new());
    Ok(BoxCloneSyncService::new(stack))
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
    let dir = Path::new(&path).parent().unwrap_or(Path::new("."));
    let loaded = match load(&text, dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "Loaded {} route(s) from {path}:",
        loaded.config.routes.len()
    );
    for (route, rc) in &loaded.config.routes {
        let layers: Vec<&str> = [
            ("rate_limit", rc.rate_limit.is_some()),
            ("gate", rc.gate.is_some()),
            ("breaker", rc.breaker.is_some()),
            ("timeout", rc.timeout.is_some()),
            ("bulkhead", rc.bulkhead.is_some()),
            ("idempotency", rc.idempotency.is_some()),
            ("split", rc.split.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        println!("  {route:<10} {}", layers.join(" → "));
    }
    if let (Some(flags), Some(every)) = (
        &loaded.flags,
        loaded.config.flags.as_ref().and_then(|f| f.poll_interval),
    ) {
        // `poll_interval` was checked when the config was loaded.
        flags.watch(every)?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, loaded.router).await });
    println!("Serving on http://{addr}");
    if selftest {
        selftest_calls(&loaded.client, &format!("http://{addr}")).await?;
        server.abort();
        return Ok(());
    }
    server.await??;
    Ok(())
}

/// A request to `url` with `headers` (static names; values must be valid header values).
pub(crate) fn request(
    method: reqwest::Method,
    url: &str,
    headers: &[(&'static str, &str)],
) -> reqwest::Request {
    let mut req = reqwest::Request::new(method, url.parse().expect("a valid URL"));
    for (name, value) in headers {
        req.headers_mut()
            .insert(*name, value.parse().expect("a valid header value"));
    }
    req
}

/// Sends `req` through a clone of `client`.
pub(crate) async fn send(
    client: &Client,
    req: reqwest::Request,
) -> Result<reqwest::Response, BoxError> {
    use tower::ServiceExt;
    client.clone().oneshot(req).await
}

/// Calls every route once or twice through the configured client and prints what happened.
pub(crate) async fn selftest_calls(client: &Client, base: &str) -> Result<(), BoxError> {
    let call = |method, path: &str, headers: &[(&'static str, &str)]| {
        send(client, request(method, &format!("{base}{path}"), headers))
    };
    let res = call(reqwest::Method::GET, "/search", &[]).await?;
    println!(
        "GET  /search   → {} (250 ms budget < 400 ms handler)",
        res.status()
    );
    for _ in 0..2 {
        let res = call(
            reqwest::Method::POST,
            "/pay",
            &[("x-api-key", "k1"), ("idempotency-key", "\"order-1\"")],
        )
        .await?;
        println!("POST /pay      → {} {}", res.status(), res.text().await?);
    }
    println!(
        "               handler ran {} time(s)",
        CHARGES.load(Ordering::SeqCst)
    );
    let res = call(reqwest::Method::GET, "/beta", &[]).await?;
    println!(
        "GET  /beta     → {} (flag `beta` is off in flags.json)",
        res.status()
    );
    // The example enables no override: `x-version` is ignored, the weights (90/10) decide.
    let res = call(reqwest::Method::GET, "/checkout", &[("x-version", "v2")]).await?;
    let served_by = res.headers().get("x-served-by").cloned();
    println!(
        "GET  /checkout → {} served by {served_by:?}: {}",
        res.status(),
        res.text().await?
    );
    Ok(())
}
