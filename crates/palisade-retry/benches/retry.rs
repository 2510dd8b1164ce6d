//! No-retry success path: palisade's `Retry` vs tower's `Retry` (never-retry policy) vs
//! tower-resilience's retry, same criterion group, plus allocations per call; and the
//! adaptive throttle's passthrough (an upstream accepting everything) against the bare service.
//!
//! Group `retry_any_request`: palisade's any-request mode (`RetryLayer::any_request`) on a
//! `Service<u64>` next to tower's `Retry` on the same service, with a policy that clones
//! the request and retries errors (what a retrying policy does on the success path).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use palisade_retry::{AdaptiveThrottleLayer, ReplayBody, RetryLayer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Polls a future that must be ready at once (all inner services here are).
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("bench future not ready"),
    }
}

fn call<S: Service<R>, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error> {
    now(std::future::poll_fn(|cx| svc.poll_ready(cx)))?;
    now(svc.call(req))
}

#[derive(Clone, Copy)]
struct NeverRetry;
impl<Req, Res, E> tower::retry::Policy<Req, Res, E> for NeverRetry {
    type Future = std::future::Ready<()>;
    fn retry(&mut self, _req: &mut Req, _result: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }
    fn clone_request(&mut self, _req: &Req) -> Option<Req> {
        None
    }
}

/// tower's retry with up to `self.0` more attempts on errors; clones the request as any
/// retrying policy must before the first call.
#[derive(Clone, Copy)]
struct Attempts(usize);
impl<Res, E> tower::retry::Policy<u64, Res, E> for Attempts {
    type Future = std::future::Ready<()>;
    fn retry(&mut self, _req: &mut u64, result: &mut Result<Res, E>) -> Option<Self::Future> {
        if result.is_err() && self.0 > 0 {
            self.0 -= 1;
            Some(std::future::ready(()))
        } else {
            None
        }
    }
    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// tower's retry with a shared `tower::retry::budget::TpsBudget`, as tower's docs write
/// it: a success deposits, a retry withdraws; the policy (an `Arc`) is cloned per call.
#[derive(Clone)]
struct BudgetAttempts {
    left: usize,
    budget: std::sync::Arc<tower::retry::budget::TpsBudget>,
}
impl<Res, E> tower::retry::Policy<u64, Res, E> for BudgetAttempts {
    type Future = std::future::Ready<()>;
    fn retry(&mut self, _req: &mut u64, result: &mut Result<Res, E>) -> Option<Self::Future> {
        use tower::retry::budget::Budget as _;
        if result.is_ok() {
            self.budget.deposit();
            None
        } else if self.left > 0 && self.budget.withdraw() {
            self.left -= 1;
            Some(std::future::ready(()))
        } else {
            None
        }
    }
    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("/").body(Empty::new()).unwrap()
}

/// Allocations per call, including the one `get()` itself makes (see "bare").
fn allocs_per_op(name: &str, mut f: impl FnMut()) {
    const N: usize = 10_000;
    f();
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        f();
    }
    let a = region.change().allocations as f64 / N as f64;
    println!("{name}: {a:.2} allocs/op");
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let inner_b = tower::service_fn(|_req: Request<ReplayBody<Empty<Bytes>>>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(Response::new(())))
    });
    let inner_t = tower::service_fn(|_req: Request<Empty<Bytes>>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(Response::new(())))
    });
    let inner_r = tower::service_fn(|_req: &'static str| {
        std::future::ready(Ok::<_, std::convert::Infallible>(Response::new(())))
    });

    let mut bare = inner_t;
    let mut palisade = RetryLayer::new().layer(inner_b);
    let mut palisade_nb = RetryLayer::new().no_budget().layer(inner_b);
    let mut palisade_single = RetryLayer::new().no_budget().max_attempts(1).layer(inner_b);
    let mut tower_retry = tower::retry::RetryLayer::new(NeverRetry).layer(inner_t);
    let mut throttle = AdaptiveThrottleLayer::new().seed(1).layer(inner_t);
    let mut resilience = tower_resilience::retry::RetryLayer::<
        &'static str,
        Response<()>,
        std::convert::Infallible,
    >::builder()
    .max_attempts(3)
    .retry_on(|_e: &std::convert::Infallible| false)
    .build()
    .layer(inner_r);

    allocs_per_op("bare", || {
        black_box(call(&mut bare, get()).unwrap());
    });
    allocs_per_op("palisade-retry", || {
        black_box(call(&mut palisade, get()).unwrap());
    });
    allocs_per_op("palisade-retry-no-budget", || {
        black_box(call(&mut palisade_nb, get()).unwrap());
    });
    allocs_per_op("adaptive-throttle", || {
        black_box(call(&mut throttle, get()).unwrap());
    });
    allocs_per_op("tower-retry", || {
        black_box(call(&mut tower_retry, get()).unwrap());
    });
    allocs_per_op("tower-resilience-retry", || {
        black_box(call(&mut resilience, "/").unwrap());
    });

    let mut g = c.benchmark_group("retry_success_path");
    g.throughput(Throughput::Elements(1));
    // The request is built untimed (iter_batched); only layer + inner call are measured.
    g.bench_function("bare", |b| {
        b.iter_batched(
            get,
            |req| call(&mut bare, req).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("palisade-retry", |b| {
        b.iter_batched(
            get,
            |req| call(&mut palisade, req).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("palisade-retry-no-budget", |b| {
        b.iter_batched(
            get,
            |req| call(&mut palisade_nb, req).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("palisade-retry-max-attempts-1", |b| {
        b.iter_batched(
            get,
            |req| call(&mut palisade_single, req).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("adaptive-throttle", |b| {
        b.iter_batched(
            get,
            |req| call(&mut throttle, req).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("tower-retry-never", |b| {
        b.iter_batched(
            get,
            |req| call(&mut tower_retry, req).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("tower-resilience-retry", |b| {
        b.iter(|| black_box(call(&mut resilience, "/").unwrap()));
    });
    g.finish();

    // Any request type: a `Service<u64>`.
    let inner_u =
        tower::service_fn(|n: u64| std::future::ready(Ok::<_, std::convert::Infallible>(n + 1)));
    let mut bare_u = inner_u;
    let mut any = RetryLayer::any_request().layer(inner_u);
    let mut any_nb = RetryLayer::any_request().no_budget().layer(inner_u);
    let mut tower_u = tower::retry::RetryLayer::new(Attempts(2)).layer(inner_u);
    let mut tower_ub = tower::retry::RetryLayer::new(BudgetAttempts {
        left: 2,
        budget: std::sync::Arc::new(tower::retry::budget::TpsBudget::new(
            std::time::Duration::from_secs(10),
            10,
            0.2,
        )),
    })
    .layer(inner_u);
    allocs_per_op("u64 bare", || {
        black_box(call(&mut bare_u, black_box(7)).unwrap());
    });
    allocs_per_op("u64 palisade-retry any_request", || {
        black_box(call(&mut any, black_box(7)).unwrap());
    });
    allocs_per_op("u64 tower-retry", || {
        black_box(call(&mut tower_u, black_box(7)).unwrap());
    });
    let mut g = c.benchmark_group("retry_any_request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare-u64", |b| {
        b.iter(|| black_box(call(&mut bare_u, black_box(7)).unwrap()));
    });
    g.bench_function("palisade-retry-any-request-u64", |b| {
        b.iter(|| black_box(call(&mut any, black_box(7)).unwrap()));
    });
    g.bench_function("palisade-retry-any-request-no-budget-u64", |b| {
        b.iter(|| black_box(call(&mut any_nb, black_box(7)).unwrap()));
    });
    g.bench_function("tower-retry-u64", |b| {
        b.iter(|| black_box(call(&mut tower_u, black_box(7)).unwrap()));
    });
    g.bench_function("tower-retry-tps-budget-u64", |b| {
        b.iter(|| black_box(call(&mut tower_ub, black_box(7)).unwrap()));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
