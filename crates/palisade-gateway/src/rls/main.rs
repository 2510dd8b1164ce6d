//! # palisade-ratelimit-service: an Envoy global rate-limit service on Palisade's Redis GCRA
//!
//! A gRPC server of `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, the API
//! Envoy's `envoy.filters.http.ratelimit` filter calls, configured with the YAML files of
//! the reference service (envoyproxy/ratelimit: `domain`, nested `descriptors` with `key`,
//! `value`, `rate_limit{unit, requests_per_unit, unlimited, name}`, `shadow_mode`) and
//! deciding with Palisade's GCRA in Redis (`palisade_ratelimit::redis::RedisBackend`): one
//! Lua script per limited descriptor, Redis's clock, so any number of instances agree.
//!
//! ```text
//! palisade-ratelimit-service --config FILE [--config FILE …] [options]
//! palisade-ratelimit-service check FILE [FILE …]     # validate; exit 2 with every problem
//! ```
//!
//! Differences from the reference service: limits refill continuously (GCRA: `n` per unit
//! is one unit every `unit / n`, bursts up to `n`) instead of fixed windows, so there is
//! no double burst at a window edge; `duration_until_reset` is the time until the limit is
//! full again (or, when refused, until one more request is admitted); `year` and
//! `replaces` are refused at load; a malformed request is `INVALID_ARGUMENT`. SIGHUP reloads
//! the files (a bad set is refused, the last good one stays).
//!
//! The service's modules: [`config`] (the files), [`descriptors`] (the tree and the
//! matching), [`service`] (the gRPC method), [`headers`] (`response_headers_to_add`).

mod config;
mod descriptors;
mod headers;
mod service;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use palisade_core::ConfigError;
use palisade_ratelimit::redis::RedisBackend;

use crate::config::Domains;
use crate::service::{OnFailure, Rls};

/// See the gateway's main: small allocations across worker threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  palisade-ratelimit-service --config FILE [--config FILE ...] [options]
  palisade-ratelimit-service check FILE [FILE ...]
options:
  --listen ADDR               gRPC address (default 127.0.0.1:8081)
  --redis URL                 Redis (default $REDIS_URL, else redis://127.0.0.1:6379)
  --prefix PREFIX             Redis key prefix (default palisade:rls:)
  --redis-timeout DURATION    bound on one Redis decision (default 50ms)
  --on-redis-failure MODE     error (UNAVAILABLE, default), allow or deny";

/// The command line.
#[derive(Debug)]
struct Options {
    check_only: bool,
    configs: Vec<PathBuf>,
    listen: SocketAddr,
    redis: String,
    prefix: String,
    timeout: Duration,
    on_failure: OnFailure,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        check_only: false,
        configs: Vec::new(),
        listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
        redis: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        prefix: "palisade:rls:".into(),
        timeout: Duration::from_millis(50),
        on_failure: OnFailure::Error,
    };
    let mut it = args.iter();
    if args.first().map(String::as_str) == Some("check") {
        it.next();
        o.check_only = true;
        o.configs = it.map(PathBuf::from).collect();
        if o.configs.is_empty() {
            return Err("check needs at least one FILE".into());
        }
        return Ok(o);
    }
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--config" | "-c" => o.configs.push(value(arg)?.into()),
            "--listen" => {
                let v = value(arg)?;
                o.listen = v
                    .parse()
                    .map_err(|e| format!("--listen `{v}`: {e} (e.g. 127.0.0.1:8081)"))?;
            }
            "--redis" => o.redis = value(arg)?,
            "--prefix" => o.prefix = value(arg)?,
            "--redis-timeout" => {
                let v = value(arg)?;
                let t = humantime_serde::re::humantime::parse_duration(&v)
                    .map_err(|e| format!("--redis-timeout `{v}`: {e} (e.g. 50ms)"))?;
                if t < Duration::from_millis(1) || t > Duration::from_secs(60) {
                    return Err(format!(
                        "--redis-timeout `{v}`: must be between 1ms and 60s"
                    ));
                }
                o.timeout = t;
            }
            "--on-redis-failure" => {
                let v = value(arg)?;
                o.on_failure = OnFailure::parse(&v).ok_or_else(|| {
                    format!("--on-redis-failure takes error, allow or deny (got `{v}`)")
                })?;
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if o.configs.is_empty() {
        return Err("at least one --config FILE is required".into());
    }
    Ok(o)
}

/// Reads and checks every file; the problems are prefixed with their file's name.
fn load(files: &[PathBuf]) -> Result<Domains, Vec<String>> {
    let mut domains = Domains::default();
    let mut problems = Vec::new();
    for f in files {
        let mut found: Vec<ConfigError> = Vec::new();
        match std::fs::metadata(f) {
            Ok(m) if m.len() > 16 << 20 => {
                problems.push(format!("{}: larger than 16 MiB", f.display()));
                continue;
            }
            _ => {}
        }
        match std::fs::read_to_string(f) {
            Ok(text) => config::load(&text, &mut domains, &mut found),
            Err(e) => problems.push(format!("{}: cannot read: {e}", f.display())),
        }
        problems.extend(found.iter().map(|p| format!("{}: {p}", f.display())));
    }
    if problems.is_empty() {
        Ok(domains)
    } else {
        Err(problems)
    }
}

fn print_problems(problems: &[String]) {
    let mut err = std::io::stderr().lock();
    let n = problems.len();
    let _ = writeln!(
        err,
        "invalid configuration ({n} problem{}):",
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        let _ = writeln!(err, "  {p}");
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 2 });
        }
    };
    let domains = match load(&opts.configs) {
        Ok(d) => d,
        Err(problems) => {
            print_problems(&problems);
            return ExitCode::from(2);
        }
    };
    if opts.check_only {
        println!(
            "ok: {} domain{}",
            domains.domains.len(),
            if domains.domains.len() == 1 { "" } else { "s" }
        );
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(opts, domains))
}

async fn serve(opts: Options, domains: Domains) -> ExitCode {
    let backend = match RedisBackend::lazy(&opts.redis) {
        Ok(b) => b.prefix(&opts.prefix).timeout(opts.timeout),
        Err(e) => {
            eprintln!("--redis `{}`: {e}", opts.redis);
            return ExitCode::from(2);
        }
    };
    let rls = Rls::new(domains, backend, opts.on_failure);
    let listener = match tokio::net::TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", opts.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(opts.listen);
    println!("palisade-ratelimit-service listening on {addr}");
    let _ = std::io::stdout().flush();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = tonic::transport::Server::builder()
        .add_service(RateLimitServiceServer::new(rls.clone()))
        .serve_with_incoming_shutdown(incoming, shutdown(&rls, &opts.configs))
        .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM; on SIGHUP reads `files` again and, if they are valid,
/// serves them (else keeps the last good configuration and prints the problems).
async fn shutdown(rls: &Rls, files: &[PathBuf]) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return,
                    _ = term.recv() => return,
                    _ = hup.recv() => match load(files) {
                        Ok(domains) => {
                            tracing::info!(target: "palisade_rls", domains = domains.domains.len(), "configuration reloaded");
                            rls.reload(domains);
                        }
                        Err(problems) => {
                            tracing::warn!(target: "palisade_rls", problems = problems.len(), "reload rejected; the last good configuration stays");
                            print_problems(&problems);
                        }
                    },
                }
            }
        }
    }
    let _ = (rls, files);
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn command_line() {
        let o = parse_args(&args("--config a.yaml -c b.yaml --listen 127.0.0.1:0 --redis-timeout 2s --on-redis-failure deny")).unwrap();
        assert_eq!(o.configs.len(), 2);
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert_eq!(o.on_failure, OnFailure::Deny);
        assert!(parse_args(&args("check a b")).unwrap().check_only);
        assert!(parse_args(&args("")).unwrap_err().contains("--config"));
        assert!(
            parse_args(&args("-c a --on-redis-failure maybe"))
                .unwrap_err()
                .contains("error, allow or deny")
        );
        assert!(parse_args(&args("-c a --redis-timeout 0s")).is_err());
        assert!(
            parse_args(&args("-c a --listen"))
                .unwrap_err()
                .contains("needs a value")
        );
    }
}
