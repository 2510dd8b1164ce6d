//! Policy dispatch (route match + stack lookup) against the same stack built by hand, with
//! 1,000 routes loaded; and the time to reload 1,000 routes.
//! Run: `cargo bench -p palisade-policy --bench dispatch -- --warm-up-time 1 --measurement-time 3`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum_core::body::Body;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use palisade_breaker::{BreakerConfig, CircuitBreakerLayer};
use palisade_bulkhead::BulkheadConfig;
use palisade_core::HandleRejectionsLayer;
use palisade_policy::{Format, PolicyHandle, PolicySet};
use palisade_ratelimit::{QuotaConfig, RateLimitConfig};
use palisade_timeout::TimeoutConfig;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const SECTIONS: &str = r#"timeout = { timeout = "30s" }
rate_limit = { quotas = [{ limit = 1000000000, window = "1s" }], response_headers = false }
breaker = { window = { count = 100 }, minimum_calls = 100 }
bulkhead = { max_concurrent = 100000 }
"#;

fn file(routes: usize, timeout: &str) -> String {
    let mut s = String::new();
    for i in 0..routes {
        let _ = writeln!(
            s,
            "[[routes]]\nmatch = {{ path = \"/r{i}/{{id}}\" }}\n{}",
            SECTIONS.replace("30s", timeout)
        );
    }
    s + "[fallback]\n" + &SECTIONS.replace("30s", timeout)
}

type Handler = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

fn handler() -> Handler {
    BoxCloneSyncService::new(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }))
}

/// The same layers as `SECTIONS`, by hand, boxed like a route stack.
fn by_hand() -> Handler {
    BoxCloneSyncService::new(by_hand_typed())
}

/// Calls a clone of `svc`, driven to readiness, inside one boxed future: how hyper-util and
/// axum call a service (a clone per request), and how the dispatcher calls a route's stack.
fn cloned_call<S>(svc: &S, path: &'static str) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let req = Request::get(path).body(Body::empty()).unwrap();
    let mut svc = svc.clone();
    let fut: std::pin::Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>> =
        Box::pin(async move {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
            svc.call(req).await
        });
    block_on(fut).unwrap()
}

/// The same layers as `SECTIONS`, by hand.
fn by_hand_typed()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let mut rl = RateLimitConfig::default();
    rl.quotas = vec![QuotaConfig::new(
        "default",
        1_000_000_000,
        Duration::from_secs(1),
    )];
    rl.response_headers = false;
    let mut bh = BulkheadConfig::default();
    bh.max_concurrent = 100_000;
    let mut t = TimeoutConfig::new(Duration::from_secs(30));
    t.insert_deadline = false;
    ServiceBuilder::new()
        .map_response(|r: Response<palisade_core::RejectionBody<Body>>| r.map(Body::new))
        .layer(HandleRejectionsLayer::new())
        .layer(rl.build().unwrap())
        .layer(t.build().unwrap())
        .layer(CircuitBreakerLayer::try_from(BreakerConfig::default()).unwrap())
        .map_response(|r: Response<palisade_bulkhead::BulkheadBody<Body>>| r.map(Body::new))
        .layer(bh.build().unwrap())
        .map_err(Into::<palisade_core::BoxError>::into)
        .service(handler())
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn call<S>(svc: &mut S, path: &'static str) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let req = Request::get(path).body(Body::empty()).unwrap();
    block_on(svc.call(req)).unwrap()
}

fn allocations<S>(name: &str, svc: &mut S, path: &'static str)
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    const N: usize = 1000;
    for _ in 0..10 {
        black_box(call(svc, path));
    }
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        black_box(call(svc, path));
    }
    let c = region.change();
    println!(
        "{name}: {:.2} allocations per request (incl. building the request)",
        c.allocations as f64 / N as f64
    );
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut hand = by_hand();
    let one = PolicyHandle::new(PolicySet::from_toml(&file(0, "30s")).unwrap());
    let mut one = one.layer().layer(handler());
    let many_handle = PolicyHandle::new(PolicySet::from_toml(&file(1000, "30s")).unwrap());
    let mut many = many_handle.layer().layer(handler());
    // The policy's own stack for route 999, built without the dispatcher: what dispatch
    // (route match + stack lookup) adds is measured against this.
    let set = many_handle.current();
    let mut same = set.route_stack(999, handler());
    let mut bare = handler();
    allocations("bare handler", &mut bare, "/r999/7");
    allocations("by hand", &mut hand, "/r999/7");
    allocations("same stack, no dispatch", &mut same, "/r999/7");
    allocations("policy, fallback only", &mut one, "/r999/7");
    allocations("policy, 1000 routes, first", &mut many, "/r0/7");
    allocations("policy, 1000 routes, last", &mut many, "/r999/7");
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare handler", |b| b.iter(|| call(&mut bare, "/r999/7")));
    g.bench_function("by hand", |b| b.iter(|| call(&mut hand, "/r999/7")));
    let typed = by_hand_typed();
    g.bench_function("by hand, cloned per request", |b| {
        b.iter(|| cloned_call(&typed, "/r999/7"));
    });
    g.bench_function("route match only, 1000 routes, last", |b| {
        let req = Request::get("/r999/7").body(Body::empty()).unwrap();
        b.iter(|| black_box(set.route_index(req.method(), req.uri(), req.headers())));
    });
    g.bench_function("same stack, no dispatch", |b| {
        b.iter(|| call(&mut same, "/r999/7"));
    });
    g.bench_function("policy, fallback only", |b| {
        b.iter(|| call(&mut one, "/r999/7"));
    });
    g.bench_function("policy, 1000 routes, first", |b| {
        b.iter(|| call(&mut many, "/r0/7"));
    });
    g.bench_function("policy, 1000 routes, last", |b| {
        b.iter(|| call(&mut many, "/r999/7"));
    });
    g.bench_function("policy, 1000 routes, unmatched", |b| {
        b.iter(|| call(&mut many, "/none"));
    });
    g.finish();
}

fn reload(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (a, b) = (file(1000, "30s"), file(1000, "29s"));
    let handle = PolicyHandle::new(PolicySet::from_toml(&a).unwrap());
    let _svc = handle.layer().layer(handler());
    let mut g = c.benchmark_group("reload 1000 routes");
    g.sample_size(10);
    g.bench_function("every route changed", |bench| {
        let mut flip = false;
        bench.iter(|| {
            flip = !flip;
            handle
                .reload_str(if flip { &b } else { &a }, Format::Toml)
                .unwrap();
        });
    });
    g.bench_function("unchanged (state carried over)", |bench| {
        bench.iter(|| handle.reload_str(&a, Format::Toml).unwrap());
    });
    g.finish();
    // On a loaded machine the wall clock counts other processes' time too: the reloading
    // thread's own CPU time is printed beside it (median of 20 reloads, every route changed).
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let (w0, c0) = (std::time::Instant::now(), thread_cpu());
        handle
            .reload_str(if i % 2 == 0 { &b } else { &a }, Format::Toml)
            .unwrap();
        wall.push(w0.elapsed());
        cpu.push(thread_cpu().zip(c0).and_then(|(c1, c0)| c1.checked_sub(c0)));
    }
    wall.sort();
    let mut cpu: Vec<Duration> = cpu.into_iter().flatten().collect();
    cpu.sort();
    println!(
        "reload 1000 routes, every route changed, median of 20: wall {:.1} ms, thread CPU {}",
        wall[10].as_secs_f64() * 1e3,
        cpu.get(cpu.len() / 2).map_or("n/a".to_owned(), |c| format!(
            "{:.1} ms",
            c.as_secs_f64() * 1e3
        )),
    );
}

/// This thread's CPU time (Linux: `/proc/thread-self/schedstat`, in ns).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

criterion_group!(benches, dispatch, reload);
criterion_main!(benches);
