//! # palisade-gateway: Palisade's policies as a reverse proxy
//!
//! A config-driven HTTP gateway on hyper 1 and hyper-util. Its routes, their policies
//! (rate limit, timeout, breaker, bulkhead, idempotency, flag gate, from `palisade-policy`)
//! and its upstreams come from one policy file; the library reads the policy sections and
//! the gateway reads its own (`listeners`, `upstreams`, `admin` and each route's `forward`).
//!
//! ```text
//! palisade-gateway                      # demo: embedded config, built-in upstreams
//! palisade-gateway --config FILE        # serve FILE (.toml or .json)
//! palisade-gateway check FILE           # validate FILE; exit 2 with every problem
//! ```
//!
//! The configuration reference is in the crate's README.md. Per request: the first route
//! whose `match` holds (else the fallback) is picked; its policy stack runs in the canonical
//! order (rejections → rate limit → gate → timeout → idempotency → breaker → bulkhead) around
//! the forwarder, which rewrites the request for the route's upstream group, streams it to
//! an endpoint (round robin or power of two choices, skipping unhealthy and ejected ones)
//! and streams the answer back. A route may instead forward to a split over several groups
//! (`palisade-traffic`: canary weights with analysis and rollback, sticky keys, override
//! header, blue-green switch and drain, strangler-fig path rules, read/write split by
//! method), driven through the admin API. HTTP/1.1 upgrades and gRPC pass through.

mod admin;
mod config;
mod demo;
mod gateway;
mod headers;
mod health;
mod problem;
mod proxy;
mod release;
mod rewrite;
mod server;
mod status;
mod upgrade;
mod upstream;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use palisade_policy::Problem;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::LogFormat;
use crate::gateway::{Gateway, Source};
use crate::proxy::ConnInfo;

/// mimalloc instead of glibc's malloc: a proxied request allocates and frees small buffers
/// (heads, header maps, futures) across worker threads, where glibc's arenas spent about a
/// tenth of the gateway's CPU (measured with `perf`, see the README's performance section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_CONFIG: &str = include_str!("default.toml");

const USAGE: &str = "usage:
  palisade-gateway                  serve the embedded demo config with built-in upstreams
  palisade-gateway --config FILE    serve FILE (.toml or .json)
  palisade-gateway check FILE       validate FILE; exit status 2 with every problem
options:
  --log-format text|json            the log format on stderr (default: admin.log_format, text)";

enum Command {
    Demo,
    Serve(PathBuf),
    Check(PathBuf),
}

/// The command and the `--log-format` option (anywhere on the line).
fn parse_args() -> Result<(Command, Option<LogFormat>), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut format = None;
    if let Some(i) = args.iter().position(|a| a == "--log-format") {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        format = Some(
            LogFormat::parse(&value)
                .ok_or_else(|| format!("--log-format takes text or json (got `{value}`)"))?,
        );
        args.drain(i..(i + 2).min(args.len()));
    }
    parse_command(&args).map(|c| (c, format))
}

fn parse_command(args: &[String]) -> Result<Command, String> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Ok(Command::Demo),
        ["--config" | "-c", file] => Ok(Command::Serve(file.into())),
        ["check", file] => Ok(Command::Check(file.into())),
        ["--help" | "-h"] => Err(String::new()),
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

fn print_problems(problems: &[Problem]) {
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

fn check(path: &std::path::Path) -> ExitCode {
    let result = Source::File(path.to_owned())
        .read()
        .and_then(|(text, format)| gateway::check(&text, format));
    match result {
        Ok((cfg, set)) => {
            for w in set.warnings() {
                eprintln!("warning: {w}");
            }
            println!(
                "ok: {} routes (fallback included), {} upstreams, {} listeners",
                set.route_count(),
                cfg.upstreams.len(),
                cfg.listeners.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            print_problems(&problems);
            ExitCode::from(2)
        }
    }
}

/// The log format the file asks for (`admin.log_format`); problems are reported later.
fn file_log_format(path: &std::path::Path) -> LogFormat {
    Source::File(path.to_owned())
        .read()
        .ok()
        .and_then(|(text, format)| gateway::parse(&text, format).ok())
        .and_then(|v| {
            v.get("admin")?
                .get("log_format")?
                .as_str()
                .and_then(LogFormat::parse)
        })
        .unwrap_or_default()
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn main() -> ExitCode {
    let (cmd, log_format) = match parse_args() {
        Ok(c) => c,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 64 });
        }
    };
    if let Command::Check(path) = &cmd {
        return check(path);
    }
    let log_format = log_format.unwrap_or_else(|| match &cmd {
        Command::Serve(path) => file_log_format(path),
        _ => LogFormat::Text,
    });
    init_logs(log_format);
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
    rt.block_on(run(cmd))
}

async fn run(cmd: Command) -> ExitCode {
    let demo = matches!(cmd, Command::Demo);
    let source = if let Command::Serve(path) = cmd {
        Source::File(path)
    } else {
        let mut text = DEFAULT_CONFIG.to_owned();
        for (name, kind) in [
            ("{healthy}", demo::Kind::Healthy),
            ("{flaky}", demo::Kind::Flaky),
            ("{slow}", demo::Kind::Slow),
        ] {
            match demo::start(kind).await {
                Ok(addr) => text = text.replace(name, &addr.to_string()),
                Err(e) => {
                    eprintln!("cannot start the demo upstreams: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Source::Text(text)
    };
    let prometheus = palisade_metrics::install_prometheus().ok();
    // Layer events (rate-limit refusals, breaker transitions, …) become metrics too.
    palisade_metrics::EventMetrics::install_global();
    let gw = match Gateway::new(source, prometheus) {
        Ok(gw) => gw,
        Err(problems) => {
            print_problems(&problems);
            return ExitCode::from(2);
        }
    };
    let table = gw.table();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (drain, mut drained) = server::Drain::new();
    let mut drain_timeout = Duration::ZERO;
    let mut urls = Vec::new();
    for l in &table.config.listeners {
        let listener = match TcpListener::bind(l.address).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("cannot listen on {}: {e}", l.address);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().unwrap_or(l.address);
        urls.push(addr);
        drain_timeout = drain_timeout.max(l.limits.drain_timeout);
        let gw = Arc::clone(&gw);
        let handle = move |req, peer| {
            Arc::clone(&gw).handle(
                req,
                ConnInfo {
                    peer,
                    proto: "http",
                },
            )
        };
        tokio::spawn(server::serve(
            listener,
            l.limits.clone(),
            handle,
            stop_rx.clone(),
            drain.clone(),
        ));
    }
    let admin = match TcpListener::bind(table.config.admin.address).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "cannot listen on {} (admin): {e}",
                table.config.admin.address
            );
            return ExitCode::FAILURE;
        }
    };
    let admin_addr = admin.local_addr().unwrap_or(table.config.admin.address);
    {
        let gw = Arc::clone(&gw);
        let handle = move |req, _peer| std::future::ready(Ok(admin::handle(&gw, &req)));
        tokio::spawn(server::serve(
            admin,
            config::Limits::default(),
            handle,
            stop_rx.clone(),
            drain.clone(),
        ));
    }
    drop(table);
    for u in &urls {
        println!("palisade-gateway listening on http://{u}");
    }
    println!("palisade-gateway admin on http://{admin_addr}");
    if demo {
        let u = urls[0];
        println!(
            "\nDemo upstreams are running in this process. Try:\n\
             \x20 curl -i http://{u}/hello                                   # forwarded to the healthy upstream\n\
             \x20 for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}}\\n' http://{u}/limited; done   # the 6th is 429\n\
             \x20 for i in $(seq 12); do curl -s -o /dev/null -w '%{{http_code}}\\n' http://{u}/flaky; done       # 500s, then the breaker answers 503\n\
             \x20 curl -i http://{u}/slow                                    # 504 after the route's 1s timeout\n\
             \x20 for i in $(seq 20); do curl -s -o /dev/null -w '%{{http_code}}\\n' http://{u}/canary; done   # 1 in 5 to the flaky canary\n\
             \x20 curl http://{admin_addr}/canaries                         # after 10 s: rolled back\n\
             \x20 curl http://{admin_addr}/health   ;  curl http://{admin_addr}/policies   ;  open http://{admin_addr}/\n\
             Ctrl-C stops."
        );
    }
    let _ = std::io::stdout().flush();
    wait_for_signals(&gw).await;
    tracing::info!(target: "palisade_gateway", "shutting down: draining connections");
    let _ = stop_tx.send(true);
    drop(drain);
    if tokio::time::timeout(drain_timeout, drained.recv())
        .await
        .is_err()
    {
        tracing::warn!(target: "palisade_gateway", "drain timeout: closing the remaining connections");
    }
    ExitCode::SUCCESS
}

/// Returns on Ctrl-C or SIGTERM; reloads on SIGHUP.
async fn wait_for_signals(gw: &Arc<Gateway>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    if let Err(problems) = gw.reload() {
                        tracing::warn!(target: "palisade_gateway", problems = problems.len(), "reload rejected; the last good configuration stays");
                        print_problems(&problems);
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = gw;
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    /// The embedded demo configuration is valid once its upstream addresses are filled in.
    #[test]
    fn the_demo_config_is_valid() {
        let text = super::DEFAULT_CONFIG
            .replace("{healthy}", "127.0.0.1:1")
            .replace("{flaky}", "127.0.0.1:2")
            .replace("{slow}", "127.0.0.1:3");
        let (cfg, set) = match crate::gateway::check(&text, palisade_policy::Format::Toml) {
            Ok(x) => x,
            Err(problems) => panic!("{problems:?}"),
        };
        assert_eq!(set.route_count(), cfg.forwards.len());
        let canary = set
            .route_names()
            .iter()
            .position(|n| *n == "canary")
            .unwrap();
        let fwd = cfg.forwards[canary].as_ref().unwrap();
        assert!(matches!(fwd.target, crate::config::Target::Split(_)));
        assert_eq!(fwd.raw.strip_prefix.as_deref(), Some("/canary"));
    }
}
