//! Split decision cost: ns/op and allocs/op.
//!
//! `cargo bench -p palisade-traffic -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderName, Request, Response};
use palisade_core::KeyError;
use palisade_core::key::{HeaderKey, key_fn};
use palisade_traffic::{Rule, Split};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::service_fn;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn arm() -> impl tower::Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|_r: Request<()>| std::future::ready(Ok::<_, Infallible>(Response::new(()))))
}

fn allocs_per_op(name: &str, mut f: impl FnMut()) {
    const N: u64 = 100_000;
    for _ in 0..1000 {
        f();
    }
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        f();
    }
    let a = region.change().allocations as f64 / N as f64;
    println!("{name}: allocs/op = {a:.3}");
}

fn bench(c: &mut Criterion) {
    let (random, _) = Split::builder()
        .arm("stable", arm())
        .arm("canary", arm())
        .weights([95, 5])
        .build()
        .unwrap();
    let (sticky, _) = Split::builder()
        .arm("stable", arm())
        .arm("canary", arm())
        .weights([95, 5])
        .sticky(HeaderKey::new(HeaderName::from_static("x-user")))
        .build()
        .unwrap();
    let (sticky_u64, _) = Split::builder()
        .arm("stable", arm())
        .arm("canary", arm())
        .weights([95, 5])
        .sticky(key_fn(|r: &Request<()>| {
            r.headers()
                .get("x-user-id")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .ok_or(KeyError::Missing {
                    what: "x-user-id header",
                })
        }))
        .build()
        .unwrap();
    let (ruled, _) = Split::builder()
        .arm("legacy", arm())
        .arm("new", arm())
        .rule(Rule::path_prefix("/a", "new"))
        .rule(Rule::path_prefix("/b", "new"))
        .rule(Rule::reads("new"))
        .override_header(HeaderName::from_static("x-arm"))
        .override_access(palisade_traffic::OverrideAccess::anyone())
        .build()
        .unwrap();
    let plain = Request::post("/orders/1").body(()).unwrap();
    let keyed_u64 = Request::get("/orders/1")
        .header("x-user-id", "1234")
        .body(())
        .unwrap();
    let keyed = Request::get("/orders/1")
        .header("x-user", "user-1234")
        .body(())
        .unwrap();

    allocs_per_op("split random (2 arms)", || {
        black_box(random.route(black_box(&plain)));
    });
    allocs_per_op("split sticky HeaderKey", || {
        black_box(sticky.route(black_box(&keyed)));
    });
    allocs_per_op("split sticky key_fn u64", || {
        black_box(sticky_u64.route(black_box(&keyed_u64)));
    });
    allocs_per_op("split override+3 rules, fallthrough", || {
        black_box(ruled.route(black_box(&plain)));
    });

    let mut g = c.benchmark_group("split_decision");
    g.throughput(Throughput::Elements(1));
    g.bench_function("random", |b| b.iter(|| random.route(black_box(&plain))));
    g.bench_function("sticky_header_key", |b| {
        b.iter(|| sticky.route(black_box(&keyed)));
    });
    g.bench_function("sticky_key_fn_u64", |b| {
        b.iter(|| sticky_u64.route(black_box(&keyed_u64)));
    });
    g.bench_function("override_rules_fallthrough", |b| {
        b.iter(|| ruled.route(black_box(&plain)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
