//! Keyed in-memory decision over 10,000 keys: palisade vs governor's keyed limiter, plus
//! the whole service path. Run: `cargo bench -p palisade-ratelimit -- --warm-up-time 1 --measurement-time 3`.
//! With `--features redis`, the Redis decision against PING on the same connection
//! (`REDIS_URL`, default 127.0.0.1:6379): `cargo bench -p palisade-ratelimit --features redis -- ratelimit_redis`.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use palisade_core::key::{PeerAddr, PeerIp};
use palisade_ratelimit::{Quota, RateLimitLayer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const KEYS: u64 = 10_000;
const RATE: u32 = 1_000_000;

fn allocs_per_op(name: &str, n: u64, mut f: impl FnMut(u64)) {
    let region = Region::new(GLOBAL);
    for i in 0..n {
        f(i);
    }
    let c = region.change();
    println!("{name}: allocs/op {:.3}", c.allocations as f64 / n as f64);
}

fn keyed(c: &mut Criterion) {
    let ours = RateLimitLayer::new(PeerIp, Quota::per_second("default", RATE).unwrap());
    let gov =
        governor::RateLimiter::keyed(governor::Quota::per_second(NonZeroU32::new(RATE).unwrap()));
    for k in 0..KEYS {
        ours.check(&k);
        let _ = gov.check_key(&k);
    }
    allocs_per_op("palisade check", 100_000, |i| {
        black_box(ours.check(&(i % KEYS)));
    });
    allocs_per_op("governor check_key", 100_000, |i| {
        let _ = black_box(gov.check_key(&(i % KEYS)));
    });

    // Outside any runtime, so `tokio::time::Instant::now()` is the plain clock it is in
    // production builds (with `test-util` in dev-deps, inside a runtime it takes a lock).
    let mut g = c.benchmark_group("ratelimit_keyed_10k");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("palisade", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(ours.check(&i))
        });
    });
    g.bench_function("governor", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let _ = black_box(gov.check_key(&i));
        });
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let layer = RateLimitLayer::new(PeerIp, Quota::per_second("default", RATE).unwrap())
        .response_headers(false);
    let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));
    let reqs: Vec<Request<()>> = (0..KEYS as u32)
        .map(|i| {
            let mut r = Request::new(());
            r.extensions_mut().insert(PeerAddr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                1,
            )));
            r
        })
        .collect();
    allocs_per_op(
        "request building only (subtract from the service line)",
        20_000,
        |i| {
            let mut r = Request::new(());
            *r.extensions_mut() = reqs[i as usize % reqs.len()].extensions().clone();
            black_box(r);
        },
    );
    {
        let layer = RateLimitLayer::new(PeerIp, Quota::per_second("default", RATE).unwrap());
        let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
        }));
        allocs_per_op(
            "palisade service with RateLimit response headers (request building included)",
            20_000,
            |i| {
                let mut r = Request::new(());
                *r.extensions_mut() = reqs[i as usize % reqs.len()].extensions().clone();
                black_box(rt.block_on(svc.call(r)).unwrap());
            },
        );
    }
    let mut i = 0usize;
    let mut call = move || {
        i = (i + 1) % reqs.len();
        let mut r = Request::new(());
        *r.extensions_mut() = reqs[i].extensions().clone();
        rt.block_on(svc.call(r)).unwrap()
    };
    allocs_per_op(
        "palisade service (request building included)",
        20_000,
        |_| {
            black_box(call());
        },
    );

    g.bench_function("palisade_service", |b| b.iter(|| black_box(call())));
    g.finish();
}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    use palisade_ratelimit::QuotaSet;
    use palisade_ratelimit::redis::RedisBackend;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Ok(backend) = rt.block_on(RedisBackend::connect(&url)) else {
        eprintln!("no Redis at {url}: skipping the Redis bench");
        return;
    };
    let backend = backend
        .prefix(&format!("palisade-bench:{}:", std::process::id()))
        .timeout(std::time::Duration::from_secs(1));
    let mut conn = rt.block_on(async {
        redis::aio::ConnectionManager::new(redis::Client::open(url.as_str()).unwrap())
            .await
            .unwrap()
    });
    let quotas = QuotaSet::from(Quota::per_second("default", RATE).unwrap());
    let prefix = format!("palisade-bench:{}:", std::process::id());
    // Where the time of a decision goes, each on the same multiplexed connection:
    // `ping` is the round trip alone; `script_return_1` adds EVALSHA of an empty script;
    // `script_before` is the previous script (pcall(replicate_commands), five-integer
    // reply per quota) through `redis::Script` (keys and args buffered twice, reply into a
    // `Vec<i64>`), i.e. the decision as it was; `decision` is `RedisBackend::check`.
    let empty = redis::Script::new("return 1");
    let before = redis::Script::new(include_str!("gcra_before.lua"));
    // Interleaved medians: on a shared, loaded machine the load drifts between criterion's
    // groups, so each round runs PING, an empty script, the script's three commands alone
    // (TIME, GET, SET PX), the decision and the decision as it was, one after the other,
    // 20,000 times; the medians give steadier ratios and show where the time goes.
    {
        const N: usize = 20_000;
        let floor = redis::Script::new(
            "local t = redis.call('TIME') local v = redis.call('GET', KEYS[1]) \
             redis.call('SET', KEYS[1], '1765000000000000', 'PX', '1001') return 1",
        );
        let script = redis::Script::new(palisade_ratelimit::redis::SCRIPT);
        let mut times: [Vec<std::time::Duration>; 6] = Default::default();
        for i in 0..N {
            let key = (i as u64 % KEYS).to_string();
            let t = std::time::Instant::now();
            let pong: String = rt
                .block_on(redis::cmd("PING").query_async(&mut conn))
                .unwrap();
            times[0].push(t.elapsed());
            black_box(pong);
            let t = std::time::Instant::now();
            let one: i64 = rt.block_on(empty.key("k").invoke_async(&mut conn)).unwrap();
            times[1].push(t.elapsed());
            black_box(one);
            let t = std::time::Instant::now();
            let one: i64 = rt
                .block_on(
                    floor
                        .key(format!("{prefix}floor:{{{key}}}"))
                        .invoke_async(&mut conn),
                )
                .unwrap();
            times[2].push(t.elapsed());
            black_box(one);
            let t = std::time::Instant::now();
            black_box(rt.block_on(backend.check(&key, &quotas)).unwrap());
            times[3].push(t.elapsed());
            let t = std::time::Instant::now();
            let mut inv = before.prepare_invoke();
            inv.arg(-1i64)
                .key(format!("{prefix}before:{{{key}}}:default"))
                .arg(1u64)
                .arg(1_000_000u64);
            let reply: Vec<i64> = rt.block_on(inv.invoke_async(&mut conn)).unwrap();
            times[4].push(t.elapsed());
            black_box(reply);
            let t = std::time::Instant::now();
            let mut inv = script.prepare_invoke();
            inv.key(format!("{prefix}script:{{{key}}}:default"))
                .arg(-1i64)
                .arg("")
                .arg(1u64)
                .arg(1_000_000u64);
            let reply: redis::Value = rt.block_on(inv.invoke_async(&mut conn)).unwrap();
            times[5].push(t.elapsed());
            black_box(reply);
        }
        let [ping, empty_script, floor, decision, old, direct] = times.map(|mut v| {
            v.sort();
            v[v.len() / 2].as_nanos() as f64
        });
        let line = |name: &str, t: f64| {
            println!("  {name:<44} {:>7.1} us  {:.2}x ping", t / 1e3, t / ping);
        };
        println!("interleaved medians over {N} rounds (REDIS_URL):");
        line("PING", ping);
        line("EVALSHA `return 1`", empty_script);
        line("EVALSHA TIME + GET + SET PX (the floor)", floor);
        line("the decision's script alone (redis::Script)", direct);
        line("decision (RedisBackend::check)", decision);
        line("decision as before (old script, redis::Script)", old);
    }
    let mut g = c.benchmark_group("ratelimit_redis");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("decision", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let key = i.to_string();
            black_box(rt.block_on(backend.check(&key, &quotas)).unwrap())
        });
    });
    g.bench_function("ping", |b| {
        b.iter(|| {
            let pong: String = rt
                .block_on(redis::cmd("PING").query_async(&mut conn))
                .unwrap();
            black_box(pong)
        });
    });
    g.bench_function("script_return_1", |b| {
        b.iter(|| {
            let one: i64 = rt.block_on(empty.key("k").invoke_async(&mut conn)).unwrap();
            black_box(one)
        });
    });
    g.bench_function("script_before", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let mut inv = before.prepare_invoke();
            inv.arg(-1i64)
                .key(format!("{prefix}before:{{{i}}}:default"))
                .arg(1u64)
                .arg(1_000_000u64);
            let reply: Vec<i64> = rt.block_on(inv.invoke_async(&mut conn)).unwrap();
            black_box(reply)
        });
    });
    g.finish();
}

#[cfg(not(feature = "redis"))]
fn redis(_c: &mut Criterion) {}

criterion_group!(benches, keyed, redis);
criterion_main!(benches);
