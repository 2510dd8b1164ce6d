//! Decisions per second and latency percentiles of one Envoy-style descriptor
//! (`domain: edge`, `user: <id>`, N per minute) on one Redis, closed loop, with `--tasks`
//! concurrent callers for `--secs` seconds over `--keys` distinct users:
//!
//! - `palisade`: `palisade_ratelimit::redis::RedisBackend::check_hits` (the call
//!   `palisade-ratelimit-service` makes per limited descriptor: one `EVALSHA`);
//! - `limitador`: `limitador::AsyncRateLimiter::check_rate_limited_and_update` with its
//!   `AsyncRedisStorage` (the exact, uncached Redis storage), the same limit as a
//!   Limitador `Limit` (namespace, max value, seconds, variable `user`);
//! - `grpc ADDR`: the whole `palisade-ratelimit-service` over gRPC (start it with
//!   `config.yaml` from this directory).
//!
//! Every key this run creates is deleted at the end (Palisade: its unique prefix;
//! Limitador: `delete_limits` of its unique namespace).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use limitador::limit::{Context, Limit, Namespace};
use limitador::storage::redis::AsyncRedisStorage;
use palisade_ratelimit::redis::RedisBackend;
use palisade_ratelimit::{Quota, QuotaSet};

#[derive(Debug, Clone)]
struct Opts {
    tasks: usize,
    secs: u64,
    keys: u64,
    limit: u32,
    redis: String,
}

#[derive(Debug, Default)]
struct Run {
    calls: u64,
    allowed: u64,
    errors: u64,
    lat_us: Vec<u32>,
}

fn report(name: &str, o: &Opts, runs: Vec<Run>, elapsed: Duration) {
    let mut all = Run::default();
    for r in runs {
        all.calls += r.calls;
        all.allowed += r.allowed;
        all.errors += r.errors;
        all.lat_us.extend(r.lat_us);
    }
    all.lat_us.sort_unstable();
    let pct = |p: f64| {
        if all.lat_us.is_empty() {
            0
        } else {
            all.lat_us[((all.lat_us.len() - 1) as f64 * p) as usize]
        }
    };
    println!(
        "{name:<10} tasks={} keys={} limit={}/min: {:>8.0} decisions/s  p50={}us p99={}us p99.9={}us max={}us  allowed={} errors={} ({:.1}s)",
        o.tasks,
        o.keys,
        o.limit,
        all.calls as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        all.lat_us.last().copied().unwrap_or(0),
        all.allowed,
        all.errors,
        elapsed.as_secs_f64(),
    );
}

/// Runs `tasks` closed loops of `call(key)` for `secs`.
async fn closed_loop<F, Fut>(o: &Opts, call: F) -> (Vec<Run>, Duration)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, String>> + Send,
{
    let call = Arc::new(call);
    // Warm-up: one call per task, untimed (script load, connections).
    for t in 0..o.tasks as u64 {
        let _ = call(t % o.keys).await;
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(o.secs);
    let mut handles = Vec::new();
    for t in 0..o.tasks as u64 {
        let call = call.clone();
        let keys = o.keys;
        handles.push(tokio::spawn(async move {
            let mut run = Run::default();
            let mut i = t.wrapping_mul(7919);
            while Instant::now() < deadline {
                i = i.wrapping_add(1);
                let k = (i.wrapping_mul(2_654_435_761)) % keys;
                let t0 = Instant::now();
                let r = call(k).await;
                run.lat_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                run.calls += 1;
                match r {
                    Ok(true) => run.allowed += 1,
                    Ok(false) => {}
                    Err(_) => run.errors += 1,
                }
            }
            run
        }));
    }
    let mut runs = Vec::new();
    for h in handles {
        runs.push(h.await.expect("task"));
    }
    (runs, started.elapsed())
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("bench-{tag}-{}-{nanos}", std::process::id())
}

async fn palisade(o: &Opts) {
    let prefix = format!("{}:", unique("palisade"));
    let backend = RedisBackend::connect(&o.redis)
        .await
        .expect("redis")
        .prefix(&prefix)
        .layer_name("rls")
        .timeout(Duration::from_secs(2));
    let set = QuotaSet::new([Quota::per_minute("user", o.limit).unwrap()]).unwrap();
    let b = backend.clone();
    let (runs, elapsed) = closed_loop(o, move |k| {
        let (b, set) = (b.clone(), set.clone());
        async move {
            let user = k.to_string();
            b.check_hits(&("edge", "user", user.as_str()), &set, 1)
                .await
                .map(|d| d.is_allowed())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    report("palisade", o, runs, elapsed);
    cleanup(&o.redis, &prefix).await;
}

async fn limitador(o: &Opts) {
    let ns = unique("limitador");
    let storage = AsyncRedisStorage::new(&o.redis).await.expect("redis");
    let limiter = Arc::new(limitador::AsyncRateLimiter::new_with_storage(Box::new(
        storage,
    )));
    let limit = Limit::new(
        ns.as_str(),
        u64::from(o.limit),
        60,
        Vec::<limitador::limit::Predicate>::new(),
        vec!["descriptors[0].user".try_into().expect("variable")],
    );
    limiter.add_limit(limit);
    let namespace: Namespace = ns.as_str().into();
    let l = limiter.clone();
    let n = namespace.clone();
    let (runs, elapsed) = closed_loop(o, move |k| {
        let (l, n) = (l.clone(), n.clone());
        async move {
            let mut values = HashMap::new();
            values.insert("user".to_string(), k.to_string());
            // As limitador-server binds an Envoy request's descriptors.
            let mut ctx = Context::default();
            ctx.list_binding("descriptors".into(), vec![values]);
            l.check_rate_limited_and_update(&n, &ctx, 1)
                .await
                .map(|r| !r.limited)
                .map_err(|e| e.to_string())
        }
    })
    .await;
    report("limitador", o, runs, elapsed);
    limiter.delete_limits(&namespace).await.expect("delete");
}

async fn grpc(o: &Opts, addr: &str) {
    let mut clients = Vec::new();
    for _ in 0..o.tasks.div_ceil(8) {
        clients.push(
            RateLimitServiceClient::connect(format!("http://{addr}"))
                .await
                .expect("connect"),
        );
    }
    let clients = Arc::new(clients);
    let (runs, elapsed) = closed_loop(o, move |k| {
        let clients = clients.clone();
        async move {
            let mut c = clients[(k as usize) % clients.len()].clone();
            let req = RateLimitRequest {
                domain: "edge".into(),
                descriptors: vec![RateLimitDescriptor {
                    entries: vec![Entry {
                        key: "user".into(),
                        value: k.to_string(),
                    }],
                    ..RateLimitDescriptor::default()
                }],
                hits_addend: 0,
            };
            c.should_rate_limit(req)
                .await
                .map(|r| r.into_inner().overall_code == 1)
                .map_err(|e| e.to_string())
        }
    })
    .await;
    report("grpc", o, runs, elapsed);
}

/// Deletes the keys under `prefix` (this run's own).
async fn cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Opts {
        tasks: 64,
        secs: 10,
        keys: 1000,
        limit: 100,
        redis: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    };
    let mut modes = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().expect("option value").clone();
        match a.as_str() {
            "--tasks" => o.tasks = v().parse().expect("--tasks N"),
            "--secs" => o.secs = v().parse::<u64>().expect("--secs N").min(120),
            "--keys" => o.keys = v().parse::<u64>().expect("--keys N").max(1),
            "--limit" => o.limit = v().parse().expect("--limit N"),
            "--redis" => o.redis = v(),
            "grpc" => modes.push(format!("grpc={}", v())),
            m => modes.push(m.to_owned()),
        }
    }
    if modes.is_empty() {
        modes = vec!["palisade".into(), "limitador".into()];
    }
    for m in modes {
        match m.as_str() {
            "palisade" => palisade(&o).await,
            "limitador" => limitador(&o).await,
            g if g.starts_with("grpc=") => grpc(&o, &g[5..]).await,
            other => panic!("unknown mode {other}: palisade, limitador, grpc ADDR"),
        }
    }
}
