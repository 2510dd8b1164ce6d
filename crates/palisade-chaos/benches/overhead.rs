//! Overhead of `FaultLayer` when no fault fires, next to the bare service: criterion
//! reports ns/op, and an `allocs/op` line per contender comes from a counting allocator.
//!
//! ```text
//! cargo bench -p palisade-chaos --bench overhead
//! ```
//!
//! A call is `poll_ready` + `call` + one poll of the response future with a no-op waker.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
use http_body_util::Empty;
use palisade_chaos::{FaultLayer, HeaderControl, Latency};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

type Req = http::Request<()>;
type Res = http::Response<Empty<Bytes>>;

fn inner()
-> impl Service<Req, Response = Res, Error = Infallible, Future = Ready<Result<Res, Infallible>>> + Clone
{
    service_fn(|_req: Req| ready(Ok::<_, Infallible>(http::Response::new(Empty::new()))))
}

fn call<S>(svc: &mut S, cx: &mut Context<'_>)
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    assert!(matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))));
    let fut = pin!(svc.call(http::Request::new(())));
    match fut.poll(cx) {
        Poll::Ready(Ok(v)) => {
            black_box(v);
        }
        _ => panic!("contender did not answer at once"),
    }
}

fn contender<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
) where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    const N: usize = 100_000;
    let mut cx = Context::from_waker(Waker::noop());
    call(&mut svc, &mut cx);
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        call(&mut svc, &mut cx);
    }
    let stats = region.change();
    println!(
        "allocs/op  chaos/{name:<40} {:>6.2}  (bytes/op {:>7.1})",
        stats.allocations as f64 / N as f64,
        stats.bytes_allocated as f64 / N as f64
    );
    assert_eq!(stats.allocations, 0, "{name} allocated when no fault fired");
    group.bench_function(name, |b| b.iter(|| call(&mut svc, &mut cx)));
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("chaos");
    group.throughput(Throughput::Elements(1));
    contender(&mut group, "bare service", inner());
    contender(
        &mut group,
        "FaultLayer, nothing configured",
        FaultLayer::new().layer(inner()),
    );
    // Every fault is drawn for (three RNG draws) and none fires.
    let never = 1e-15;
    contender(
        &mut group,
        "FaultLayer, delay+abort+error drawn",
        FaultLayer::new()
            .seed(1)
            .delay(Latency::fixed(Duration::from_millis(5)), never)
            .abort(http::StatusCode::SERVICE_UNAVAILABLE, never)
            .error(never)
            .layer(inner()),
    );
    contender(
        &mut group,
        "FaultLayer, header control, no headers",
        FaultLayer::new()
            .header_control(HeaderControl::new())
            .layer(inner()),
    );
    group.finish();
}

criterion_group!(benches, overhead);

/// Runs `n` calls of one contender and nothing else, for an instruction count that the
/// machine's load cannot change:
///
/// ```text
/// CHAOS_CALLGRIND=nothing valgrind --tool=callgrind target/release/deps/overhead-*
/// ```
///
/// (`bare`, `nothing`, `drawn` or `headers`; run each with two `CHAOS_CALLS` and take the
/// difference over the difference of calls, so start-up cancels out).
fn instruction_count(which: &str) {
    let n: usize = std::env::var("CHAOS_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());
    fn run<S>(mut svc: S, n: usize, cx: &mut Context<'_>)
    where
        S: Service<Req>,
        S::Error: std::fmt::Debug,
    {
        for _ in 0..n {
            call(&mut svc, cx);
        }
    }
    let never = 1e-15;
    match which {
        "bare" => run(inner(), n, &mut cx),
        "nothing" => run(FaultLayer::new().layer(inner()), n, &mut cx),
        "drawn" => run(
            FaultLayer::new()
                .seed(1)
                .delay(Latency::fixed(Duration::from_millis(5)), never)
                .abort(http::StatusCode::SERVICE_UNAVAILABLE, never)
                .error(never)
                .layer(inner()),
            n,
            &mut cx,
        ),
        "headers" => run(
            FaultLayer::new()
                .header_control(HeaderControl::new())
                .layer(inner()),
            n,
            &mut cx,
        ),
        other => panic!("unknown contender {other}"),
    }
}

fn main() {
    if let Ok(which) = std::env::var("CHAOS_CALLGRIND") {
        instruction_count(&which);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
