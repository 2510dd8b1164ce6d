//! Per-request overhead of the idempotency layer: pass-through, first execution and replay
//! with the in-memory store (and Redis when reachable), against the bare handler.
//!
//! Run: `cargo bench -p palisade-idempotency -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::many_single_char_names, clippy::clone_on_copy)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_idempotency::{IdempotencyLayer, MemoryStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const BODY: &[u8] = b"{\"amount\":1000,\"currency\":\"eur\"}";
const RESPONSE: &[u8] = b"{\"id\":\"ch_1\",\"status\":\"succeeded\"}";

async fn handler<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .status(201)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(RESPONSE)))
        .unwrap())
}

fn request(method: http::Method, key: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri("/charges")
        .header("x-api-key", "customer-1");
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(Full::new(Bytes::from_static(BODY))).unwrap()
}

/// Calls the service once and drains the body, like a server would.
async fn once<S, B>(svc: &mut S, req: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
}

fn allocs_per_op(
    rt: &tokio::runtime::Runtime,
    name: &str,
    n: usize,
    mut make: impl FnMut(usize) -> Request<Full<Bytes>>,
    mut call: impl FnMut(
        Request<Full<Bytes>>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
) {
    let reqs: Vec<_> = (0..n).map(&mut make).collect();
    // The boxing of the closure's future is measured too: subtract one allocation per op.
    let region = Region::new(GLOBAL);
    rt.block_on(async {
        for r in reqs {
            call(r).await;
        }
    });
    let change = region.change();
    println!(
        "{name:<28} allocs/op: {:>6.2}  bytes/op: {:>8.1}",
        change.allocations as f64 / n as f64 - 1.0,
        change.bytes_allocated as f64 / n as f64
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare = service_fn(handler::<Full<Bytes>>);
    // First executions: every key new; a 1 ms TTL lets the bounded store purge old keys.
    let first = IdempotencyLayer::new(MemoryStore::with_max_entries(100_000))
        .ttl(Duration::from_millis(1))
        .layer(service_fn(handler));
    let replay = IdempotencyLayer::new(MemoryStore::new()).layer(service_fn(handler));
    rt.block_on(once(
        &mut replay.clone(),
        request(http::Method::POST, Some("\"r1\"")),
    ));
    let pass = IdempotencyLayer::new(MemoryStore::new()).layer(service_fn(handler));

    let n = 10_000;
    {
        let s = bare.clone();
        allocs_per_op(
            &rt,
            "bare handler",
            n,
            |_| request(http::Method::POST, None),
            move |r| {
                let mut s = s.clone();
                Box::pin(async move { once(&mut s, r).await })
            },
        );
        let s = pass.clone();
        allocs_per_op(
            &rt,
            "memory pass-through (GET)",
            n,
            |_| request(http::Method::GET, Some("\"k\"")),
            move |r| {
                let mut s = s.clone();
                Box::pin(async move { once(&mut s, r).await })
            },
        );
        let s = first.clone();
        allocs_per_op(
            &rt,
            "memory first execution",
            n,
            |i| request(http::Method::POST, Some(&format!("\"alloc-{i}\""))),
            move |r| {
                let mut s = s.clone();
                Box::pin(async move { once(&mut s, r).await })
            },
        );
        let s = replay.clone();
        allocs_per_op(
            &rt,
            "memory replay",
            n,
            |_| request(http::Method::POST, Some("\"r1\"")),
            move |r| {
                let mut s = s.clone();
                Box::pin(async move { once(&mut s, r).await })
            },
        );
    }

    let mut g = c.benchmark_group("idempotency");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare", |b| {
        let mut s = bare.clone();
        b.iter_batched(
            || request(http::Method::POST, None),
            |r| rt.block_on(once(&mut s, r)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("memory/pass_through", |b| {
        let mut s = pass.clone();
        b.iter_batched(
            || request(http::Method::GET, Some("\"k\"")),
            |r| rt.block_on(once(&mut s, r)),
            BatchSize::SmallInput,
        );
    });
    let mut i = 0u64;
    g.bench_function("memory/first_execution", |b| {
        let mut s = first.clone();
        b.iter_batched(
            || {
                i += 1;
                request(http::Method::POST, Some(&format!("\"k-{i}\"")))
            },
            |r| rt.block_on(once(&mut s, r)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("memory/replay", |b| {
        let mut s = replay.clone();
        b.iter_batched(
            || request(http::Method::POST, Some("\"r1\"")),
            |r| rt.block_on(once(&mut s, r)),
            BatchSize::SmallInput,
        );
    });

    #[cfg(feature = "redis")]
    redis_benches(&rt, &mut g);
    g.finish();
}

#[cfg(feature = "redis")]
fn redis_benches(
    rt: &tokio::runtime::Runtime,
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    use palisade_idempotency::RedisStore;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("palisade-bench:{}:", rand::random::<u64>());
    let Ok(store) = rt.block_on(RedisStore::connect(&url, prefix)) else {
        println!("redis benches skipped: {url} unreachable");
        return;
    };
    let first = IdempotencyLayer::new(store.clone())
        .ttl(Duration::from_secs(5))
        .layer(service_fn(handler));
    let replay = IdempotencyLayer::new(store.clone())
        .ttl(Duration::from_secs(600))
        .layer(service_fn(handler));
    rt.block_on(once(
        &mut replay.clone(),
        request(http::Method::POST, Some("\"r1\"")),
    ));
    let mut i = 0u64;
    g.bench_function("redis/first_execution", |b| {
        let mut s = first.clone();
        b.iter_batched(
            || {
                i += 1;
                request(http::Method::POST, Some(&format!("\"k-{i}\"")))
            },
            |r| rt.block_on(once(&mut s, r)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("redis/replay", |b| {
        let mut s = replay.clone();
        b.iter_batched(
            || request(http::Method::POST, Some("\"r1\"")),
            |r| rt.block_on(once(&mut s, r)),
            BatchSize::SmallInput,
        );
    });
}

/// Issue #15 item 8: per-insert time of the memory store under hostile key cardinality (each
/// key new, begin + complete with a 100-byte body), in an 8 MiB store, at 10k/100k/1M keys.
/// Printed, not a criterion group: one pass per size is the measurement.
fn hostile_keys(_c: &mut Criterion) {
    use palisade_idempotency::{Begin, StoredResponse};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for n in [10_000usize, 100_000, 1_000_000] {
        rt.block_on(async {
            let store = MemoryStore::with_limits(1_000_000, 8 << 20, 1_000);
            let (lease, ttl) = (
                std::time::Duration::from_secs(60),
                std::time::Duration::from_secs(86_400),
            );
            let tail = n / 10;
            let mut start = std::time::Instant::now();
            for i in 0..n {
                if i == n - tail {
                    start = std::time::Instant::now();
                }
                let key = format!("hostile-{i}");
                let Ok(Begin::Started { fencing_token, .. }) =
                    store.begin_now(&key, &[1; 32], lease, ttl)
                else {
                    panic!("not started")
                };
                let r = StoredResponse {
                    status: http::StatusCode::CREATED,
                    headers: Vec::new(),
                    body: Bytes::from(vec![b'x'; 100]),
                };
                store.complete_now(&key, fencing_token, &r, ttl);
            }
            let per = start.elapsed() / u32::try_from(tail).unwrap();
            println!(
                "memory store, hostile keys: {n:>9} keys, last 10%: {per:?} per insert, weighted {} B of {} B",
                store.weighted_size(),
                8u64 << 20
            );
        });
    }
}

criterion_group!(benches, bench, hostile_keys);
criterion_main!(benches);
