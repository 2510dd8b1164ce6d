//! Closed-state success path: palisade's breaker vs tower-resilience's, around a ready
//! `service_fn`, plus two-thread contention throughput.
//! Run: `cargo bench -p palisade-breaker -- --warm-up-time 1 --measurement-time 3`; with
//! `--features redis`, also fleet mode's request-path cost (`breaker_fleet_closed_success`).

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palisade_breaker::CircuitBreakerLayer;
use palisade_core::ErrorsAsFailures;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Polls a future to completion on this thread. Uncontended, the futures here complete on
/// the first poll; under contention tower-resilience's async mutex may return `Pending`, and
/// its waiter is then polled again until it holds the lock. Outside any runtime, so
/// `tokio::time::Instant::now()` is the plain clock.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn call<S: Service<u64>>(svc: &mut S, i: u64) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(r) => r?,
        Poll::Pending => panic!("not ready"),
    }
    block_on(svc.call(i))
}

fn inner() -> impl Service<u64, Response = u64, Error = Infallible, Future: Send> + Clone + Send {
    service_fn(|i: u64| async move { Ok::<_, Infallible>(i) })
}

fn ours() -> impl Service<u64, Response = u64, Error = palisade_core::BoxError> + Clone + Send {
    CircuitBreakerLayer::builder()
        .classifier(ErrorsAsFailures)
        .build()
        .unwrap()
        .layer(inner())
}

fn theirs() -> impl Service<u64, Response = u64, Error: std::fmt::Debug> + Clone + Send {
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .wait_duration_in_open(Duration::from_secs(60))
        .build()
        .unwrap()
        .layer(inner())
}

fn allocs_per_op<S: Service<u64>>(name: &str, mut svc: S) {
    const N: u64 = 100_000;
    for i in 0..1_000 {
        let _ = black_box(call(&mut svc, i));
    }
    let region = Region::new(GLOBAL);
    for i in 0..N {
        let _ = black_box(call(&mut svc, i));
    }
    let c = region.change();
    #[allow(clippy::cast_precision_loss)]
    let per = c.allocations as f64 / N as f64;
    println!("{name}: allocs/op {per:.3}");
}

fn closed_success(c: &mut Criterion) {
    allocs_per_op("palisade closed success", ours());
    allocs_per_op("tower-resilience closed success", theirs());

    let mut g = c.benchmark_group("breaker_closed_success");
    g.throughput(Throughput::Elements(1));
    let mut svc = ours();
    let mut i = 0u64;
    g.bench_function("palisade", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(call(&mut svc, i)).unwrap()
        });
    });
    let mut svc = theirs();
    g.bench_function("tower-resilience", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(call(&mut svc, i)).unwrap()
        });
    });
    g.finish();
}

/// Two threads hammer clones of one breaker; reports the time for `iters` calls per thread.
fn two_threads<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<u64> + Clone + Send,
{
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let mut svc = svc.clone();
            s.spawn(move || {
                for i in 0..iters {
                    let _ = black_box(call(&mut svc, i));
                }
            });
        }
    });
    start.elapsed()
}

fn contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_closed_success_2_threads");
    g.throughput(Throughput::Elements(2));
    let svc = ours();
    g.bench_function("palisade", |b| {
        b.iter_custom(|iters| two_threads(&svc, iters));
    });
    let svc = theirs();
    g.bench_function("tower-resilience", |b| {
        b.iter_custom(|iters| two_threads(&svc, iters));
    });
    g.finish();
}

/// Fleet mode's cost on the request path (feature `redis`): a time window, local vs fleet.
/// The fleet breaker's flush task is spawned on a runtime that is never driven, so no flush
/// runs and the breaker stays in its local mode, which is the dearer one (it also runs the
/// local "may trip" check); the difference is the outcome counted for the next flush.
#[cfg(feature = "redis")]
fn fleet_closed_success(c: &mut Criterion) {
    use palisade_breaker::{FleetConfig, SlidingWindow};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in_rt = rt.enter();
    let timed = || {
        CircuitBreakerLayer::builder()
            .window(SlidingWindow::Time(60))
            .classifier(ErrorsAsFailures)
    };
    let local = timed().build().unwrap().layer(inner());
    let conn = redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_connection_manager_lazy(redis::aio::ConnectionManagerConfig::new())
        .unwrap();
    let fleet = timed()
        .fleet(FleetConfig::default())
        .redis(conn)
        .build()
        .unwrap()
        .layer(inner());
    allocs_per_op("palisade fleet closed success", fleet.clone());

    let mut g = c.benchmark_group("breaker_fleet_closed_success");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    for (name, mut svc) in [("local_time_window", local), ("fleet_time_window", fleet)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(call(&mut svc, i)).unwrap()
            });
        });
    }
    g.finish();
}

#[cfg(not(feature = "redis"))]
criterion_group!(benches, closed_success, contention);
#[cfg(feature = "redis")]
criterion_group!(benches, closed_success, contention, fleet_closed_success);
criterion_main!(benches);
