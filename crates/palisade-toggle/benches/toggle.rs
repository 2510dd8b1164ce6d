//! Flag evaluation cost: a boolean flag with a cached context (target: 0 allocations) and a
//! fractional split.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_toggle::{
    Condition, EvaluationContext, Flag, FlagSet, Flags, Fractional, StaticProvider, TargetingRule,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn provider() -> StaticProvider {
    StaticProvider::new(
        FlagSet::new()
            .with("plain", Flag::boolean(true))
            .with(
                "targeted",
                Flag::boolean(false).rule(TargetingRule::variant(
                    Condition::EndsWith("email".into(), "@acme.io".into()),
                    "on",
                )),
            )
            .with(
                "rollout",
                Flag::boolean(false).rule(TargetingRule::fractional(
                    Condition::Always,
                    Fractional::new([("on", 25), ("off", 75)]),
                )),
            ),
    )
}

fn allocs_per_op(name: &str, mut f: impl FnMut()) {
    const N: u64 = 10_000;
    f();
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        f();
    }
    let allocs = region.change().allocations as f64 / N as f64;
    println!("allocs/op {name}: {allocs}");
}

fn bench(c: &mut Criterion) {
    let provider = provider();
    let ctx = Arc::new(
        EvaluationContext::new()
            .with_targeting_key("user-42")
            .with("email", "ann@acme.io"),
    );
    let flags = Flags::with_context(&provider, ctx);

    allocs_per_op("boolean static", || {
        black_box(flags.boolean(black_box("plain"), false));
    });
    allocs_per_op("boolean targeting", || {
        black_box(flags.boolean(black_box("targeted"), false));
    });
    allocs_per_op("boolean fractional", || {
        black_box(flags.boolean(black_box("rollout"), false));
    });
    allocs_per_op("handle from provider (per request)", || {
        black_box(Flags::without_context(&provider));
    });

    let mut group = c.benchmark_group("toggle");
    group.bench_function("boolean static", |b| {
        b.iter(|| flags.boolean(black_box("plain"), false));
    });
    group.bench_function("boolean targeting", |b| {
        b.iter(|| flags.boolean(black_box("targeted"), false));
    });
    group.bench_function("boolean fractional", |b| {
        b.iter(|| flags.boolean(black_box("rollout"), false));
    });
    group.bench_function("details fractional", |b| {
        b.iter(|| black_box(flags.details(black_box("rollout"), false)).reason);
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
