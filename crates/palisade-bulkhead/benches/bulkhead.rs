//! Uncontended per-call cost of the bulkhead next to tower's `ConcurrencyLimit` and
//! tower-resilience's bulkhead (one criterion group, ns/op), an `allocs/op` line per
//! contender, and 2-thread contended throughput.
//!
//! ```text
//! cargo bench -p palisade-bulkhead -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! A call is `poll_ready` + `call` + one poll of the response future with a no-op waker
//! (inside a tokio runtime context), so only the layer is measured.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palisade_bulkhead::{BulkheadLayer, Mode};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

type Req = http::Request<()>;

const CONTENDED_CALLS: usize = 200_000;

fn inner()
-> impl Service<Req, Response = u32, Error = Infallible, Future = Ready<Result<u32, Infallible>>> + Clone
{
    service_fn(|_req: Req| ready(Ok::<u32, Infallible>(7)))
}

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

fn bench_one<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
) where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    const N: usize = 10_000;
    let mut cx = Context::from_waker(Waker::noop());
    call_once(&mut svc, &mut cx);
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        call_once(&mut svc, &mut cx);
    }
    let stats = region.change();
    println!(
        "allocs/op  {name:<40} {:>6.2}  (bytes/op {:>7.1})",
        stats.allocations as f64 / N as f64,
        stats.bytes_allocated as f64 / N as f64
    );
    group.bench_function(name, |b| b.iter(|| call_once(&mut svc, &mut cx)));
}

fn contended<S>(name: &str, svc: S)
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let secs = rt.block_on(async move {
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    for _ in 0..CONTENDED_CALLS {
                        let v = svc.ready().await.unwrap().call(Req::new(())).await.unwrap();
                        black_box(v);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        started.elapsed().as_secs_f64()
    });
    println!(
        "2-thread  {name:<40} {:>6.2} M calls/s",
        (2 * CONTENDED_CALLS) as f64 / secs / 1e6
    );
}

fn bulkhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let ours = |mode| {
        BulkheadLayer::builder()
            .max_concurrent(1_000)
            .mode(mode)
            .release_on_response()
            .build()
            .unwrap()
            .layer(inner())
    };
    let tower_limit = || tower::limit::ConcurrencyLimitLayer::new(1_000).layer(inner());
    let theirs = || {
        tower_resilience::bulkhead::BulkheadLayer::builder()
            .max_concurrent_calls(1_000)
            .build()
            .unwrap()
            .layer(inner())
    };

    let mut group = c.benchmark_group("bulkhead (uncontended)");
    group.throughput(Throughput::Elements(1));
    bench_one(&mut group, "bare service_fn", inner());
    bench_one(&mut group, "tower ConcurrencyLimit", tower_limit());
    bench_one(&mut group, "palisade Bulkhead (shed)", ours(Mode::Shed));
    bench_one(
        &mut group,
        "palisade Bulkhead (backpressure)",
        ours(Mode::Backpressure),
    );
    bench_one(&mut group, "tower-resilience Bulkhead", theirs());
    group.finish();

    contended("tower ConcurrencyLimit", tower_limit());
    contended("palisade Bulkhead (shed)", ours(Mode::Shed));
    contended("palisade Bulkhead (backpressure)", ours(Mode::Backpressure));
    contended("tower-resilience Bulkhead", theirs());
}

criterion_group!(benches, bulkhead);
criterion_main!(benches);
