//! Per-call overhead of Palisade layers next to tower's and tower-resilience's equivalents,
//! in one run: criterion reports ns/op, and an `allocs/op` line per contender is printed from
//! a counting global allocator.
//!
//! ```text
//! cargo bench --bench layers
//! ```
//!
//! Each contender wraps the same always-ready `service_fn`; a call is `poll_ready` + `call` +
//! one poll of the response future with a no-op waker (inside a tokio runtime context, for the
//! timers), so executor cost is not measured — only the layer.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palisade::timeout::TimeoutLayer;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

type Req = http::Request<()>;

fn inner()
-> impl Service<Req, Response = u32, Error = Infallible, Future = Ready<Result<u32, Infallible>>> + Clone
{
    service_fn(|_req: Req| ready(Ok::<u32, Infallible>(7)))
}

/// One call through `svc`, polled once (the inner service is ready at once).
#[inline]
fn call_once<S>(svc: &mut S, cx: &mut Context<'_>)
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    assert!(matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))));
    let fut = pin!(svc.call(Req::new(())));
    match fut.poll(cx) {
        Poll::Ready(Ok(v)) => {
            black_box(v);
        }
        _ => panic!("contender did not answer at once"),
    }
}

fn allocs_per_call<S>(name: &str, svc: &mut S)
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    const N: usize = 10_000;
    let mut cx = Context::from_waker(Waker::noop());
    call_once(svc, &mut cx); // warm up lazily initialised state
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        call_once(svc, &mut cx);
    }
    let stats = region.change();
    println!(
        "allocs/op  {name:<44} {:>6.2}  (bytes/op {:>7.1})",
        stats.allocations as f64 / N as f64,
        stats.bytes_allocated as f64 / N as f64
    );
}

fn bench_one<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
) where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    allocs_per_call(&format!("{}/{name}", "timeout"), &mut svc);
    let mut cx = Context::from_waker(Waker::noop());
    group.bench_function(name, |b| b.iter(|| call_once(&mut svc, &mut cx)));
}

fn timeout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let d = Duration::from_secs(30);

    let mut group = c.benchmark_group("timeout");
    group.throughput(Throughput::Elements(1));
    bench_one(&mut group, "bare service_fn", inner());
    bench_one(
        &mut group,
        "tower Timeout",
        tower::timeout::TimeoutLayer::new(d).layer(inner()),
    );
    bench_one(
        &mut group,
        "palisade Timeout (no deadline extension)",
        TimeoutLayer::new(d).insert_deadline(false).layer(inner()),
    );
    bench_one(
        &mut group,
        "palisade Timeout (default)",
        TimeoutLayer::new(d).layer(inner()),
    );
    bench_one(
        &mut group,
        "tower-resilience TimeLimiter",
        tower_resilience::timelimiter::TimeLimiterLayer::builder()
            .timeout_duration(d)
            .build()
            .layer(inner()),
    );
    group.finish();
}

criterion_group!(benches, timeout);
criterion_main!(benches);
