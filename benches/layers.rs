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

/// A marker extension, standing in for what axum/hyper put on every request.
#[derive(Clone, Copy)]
struct Marker;

/// A bare request, or one that already carries an extension (as every axum request does).
fn request(with_extension: bool) -> Req {
    let mut req = Req::new(());
    if with_extension {
        req.extensions_mut().insert(Marker);
    }
    req
}

/// One contender of the `http::Request<()>` groups: `bench_with` on a bare request or one
/// that already carries an extension.
fn bench_one<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    group_name: &str,
    name: &str,
    svc: S,
    with_extension: bool,
) where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    bench_with(group, group_name, name, svc, move || {
        request(with_extension)
    });
}

fn timeout(c: &mut Criterion) {
    if skipped("timeout") && skipped("timeout, request with extensions") {
        return;
    }
    let rt = runtime();
    let _guard = rt.enter();
    let d = Duration::from_secs(30);

    for (group_name, ext) in [
        ("timeout", false),
        ("timeout, request with extensions", true),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(1));
        bench_one(&mut group, group_name, "bare service_fn", inner(), ext);
        bench_one(
            &mut group,
            group_name,
            "tower Timeout",
            tower::timeout::TimeoutLayer::new(d).layer(inner()),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            "palisade Timeout (insert_deadline off)",
            TimeoutLayer::new(d).insert_deadline(false).layer(inner()),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            "palisade Timeout (default)",
            TimeoutLayer::new(d).layer(inner()),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            "tower-resilience TimeLimiter",
            tower_resilience::timelimiter::TimeLimiterLayer::builder()
                .timeout_duration(d)
                .build()
                .layer(inner()),
            ext,
        );
        group.finish();
    }
}

/// Calls per thread in the contention run.
const CONTENDED_CALLS: u64 = 500_000;

/// Two tasks on a 2-worker tokio runtime calling clones of one service (one shared
/// breaker) as fast as they can. Real tasks rather than a no-op waker, because a contended
/// contender may return `Pending` (tower-resilience takes an async lock).
fn contended<S>(name: &str, svc: S)
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    use tower::ServiceExt;
    if counted_calls().is_some() {
        return;
    }
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
        "2-thread  {name:<44} {:>6.2} M calls/s",
        (2 * CONTENDED_CALLS) as f64 / secs / 1e6
    );
}

fn breaker(c: &mut Criterion) {
    if skipped("breaker (closed, success)") {
        return;
    }
    use palisade::breaker::CircuitBreakerLayer;
    use palisade::classify::ErrorsAsFailures;

    let rt = runtime();
    let _guard = rt.enter();
    let ours = || {
        CircuitBreakerLayer::builder()
            .classifier(ErrorsAsFailures)
            .build()
            .unwrap()
            .layer(inner())
    };
    let theirs = || {
        tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
            .build()
            .unwrap()
            .layer(inner())
    };

    let group_name = "breaker (closed, success)";
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    bench_one(&mut group, group_name, "bare service_fn", inner(), false);
    bench_one(
        &mut group,
        group_name,
        "palisade CircuitBreaker",
        ours(),
        false,
    );
    bench_one(
        &mut group,
        group_name,
        "tower-resilience CircuitBreaker",
        theirs(),
        false,
    );
    group.finish();

    contended("bare service_fn", inner());
    contended("palisade CircuitBreaker", ours());
    contended("tower-resilience CircuitBreaker", theirs());
}

fn bulkhead(c: &mut Criterion) {
    if skipped("bulkhead (uncontended)") {
        return;
    }
    use palisade::bulkhead::{BulkheadLayer, BulkheadMode};

    let rt = runtime();
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

    let group_name = "bulkhead (uncontended)";
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    bench_one(&mut group, group_name, "bare service_fn", inner(), false);
    bench_one(
        &mut group,
        group_name,
        "tower ConcurrencyLimit",
        tower_limit(),
        false,
    );
    bench_one(
        &mut group,
        group_name,
        "palisade Bulkhead (shed)",
        ours(BulkheadMode::Shed),
        false,
    );
    bench_one(
        &mut group,
        group_name,
        "palisade Bulkhead (backpressure)",
        ours(BulkheadMode::Backpressure),
        false,
    );
    bench_one(
        &mut group,
        group_name,
        "tower-resilience Bulkhead",
        theirs(),
        false,
    );
    group.finish();

    contended("tower ConcurrencyLimit", tower_limit());
    contended("palisade Bulkhead (shed)", ours(BulkheadMode::Shed));
    contended(
        "palisade Bulkhead (backpressure)",
        ours(BulkheadMode::Backpressure),
    );
    contended("tower-resilience Bulkhead", theirs());
}

/// One call with a request of any type, polled once.
fn call_with<S, Q>(svc: &mut S, cx: &mut Context<'_>, make: &impl Fn() -> Q)
where
    S: Service<Q>,
    S::Error: std::fmt::Debug,
{
    assert!(matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))));
    let fut = pin!(svc.call(make()));
    match fut.poll(cx) {
        Poll::Ready(Ok(v)) => {
            black_box(v);
        }
        _ => panic!("contender did not answer at once"),
    }
}

fn bench_with<S, Q>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    group_name: &str,
    name: &str,
    mut svc: S,
    make: impl Fn() -> Q,
) where
    S: Service<Q>,
    S::Error: std::fmt::Debug,
{
    const N: usize = 10_000;
    let mut cx = Context::from_waker(Waker::noop());
    if let Some(calls) = counted_calls() {
        // Instruction-count mode (see `counted_calls`): only the chosen contender, a fixed
        // number of calls, no criterion.
        let id = format!("{group_name}/{name}");
        if std::env::var("LAYERS_ONLY").is_ok_and(|only| id == only) {
            for _ in 0..calls {
                call_with(&mut svc, &mut cx, &make);
            }
            println!("counted    {id}: {calls} calls");
        }
        return;
    }
    call_with(&mut svc, &mut cx, &make);
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        call_with(&mut svc, &mut cx, &make);
    }
    let stats = region.change();
    println!(
        "allocs/op  {group_name}/{name:<44} {:>6.2}  (bytes/op {:>7.1})",
        stats.allocations as f64 / N as f64,
        stats.bytes_allocated as f64 / N as f64
    );
    group.bench_function(name, |b| b.iter(|| call_with(&mut svc, &mut cx, &make)));
}

/// `LAYERS_CALLS=n LAYERS_ONLY="<group>/<contender>"`: run that one contender `n` times and
/// nothing else, for counting instructions under callgrind, which the machine's load does not
/// change. Instructions per call are the difference between two counts over the difference
/// in calls (start-up cancels out):
///
/// ```text
/// cargo bench --bench layers --no-run   # prints the binary's path
/// LAYERS_CALLS=20000 LAYERS_ONLY="breaker (closed, success)/palisade CircuitBreaker" \
///     valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/layers-<hash> --bench
/// # the same with LAYERS_CALLS=40000; (total at 40000 − total at 20000) / 20000
/// ```
fn counted_calls() -> Option<usize> {
    std::env::var("LAYERS_CALLS").ok()?.parse().ok()
}

/// In instruction-count mode, whether a group other than the chosen contender's is skipped
/// before it builds anything (governor's clock calibrates itself for a varying number of
/// instructions).
fn skipped(group: &str) -> bool {
    counted_calls().is_some()
        && !std::env::var("LAYERS_ONLY").is_ok_and(|only| only.starts_with(&format!("{group}/")))
}

/// A current-thread runtime with timers, entered by each group (the layers' sleeps need one).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// The retry and stack groups' request: an API call with one header and an empty body.
type Get = http::Request<http_body_util::Empty<bytes::Bytes>>;

fn api_request(method: http::Method) -> Get {
    http::Request::builder()
        .method(method)
        .uri("/items?page=2")
        .header("accept", "application/json")
        .body(http_body_util::Empty::new())
        .unwrap()
}

/// A tower retry policy that never retries (and never clones the request).
#[derive(Clone)]
struct NeverRetry;

impl<Q, R, E> tower::retry::Policy<Q, R, E> for NeverRetry {
    type Future = Ready<()>;
    fn retry(&mut self, _req: &mut Q, _result: &mut Result<R, E>) -> Option<Self::Future> {
        None
    }
    fn clone_request(&mut self, _req: &Q) -> Option<Q> {
        None
    }
}

fn retry(c: &mut Criterion) {
    if skipped("retry (success, no retry)") {
        return;
    }
    use bytes::Bytes;
    use http_body_util::Empty;
    use palisade::retry::{RetryBody, RetryLayer};
    use std::sync::Arc;

    let rt = runtime();
    let _guard = rt.enter();
    let get = || api_request(http::Method::GET);
    let post = || api_request(http::Method::POST);
    let ok = || http::Response::new(());

    let group_name = "retry (success, no retry)";
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    bench_with(
        &mut group,
        group_name,
        "bare service_fn",
        service_fn(move |_: Get| ready(Ok::<_, Infallible>(ok()))),
        get,
    );
    bench_with(
        &mut group,
        group_name,
        "tower Retry (never-retry policy)",
        tower::retry::RetryLayer::new(NeverRetry)
            .layer(service_fn(move |_: Get| ready(Ok::<_, Infallible>(ok())))),
        get,
    );
    let ours = |layer: RetryLayer| {
        layer.layer(service_fn(
            move |_: http::Request<RetryBody<Empty<Bytes>>>| ready(Ok::<_, Infallible>(ok())),
        ))
    };
    bench_with(
        &mut group,
        group_name,
        "palisade Retry, GET (kept for replay)",
        ours(RetryLayer::new()),
        get,
    );
    // Without the retry budget (whose deposit reads the clock), as tower-resilience.
    bench_with(
        &mut group,
        group_name,
        "palisade Retry, GET, no_budget()",
        ours(RetryLayer::new().no_budget()),
        get,
    );
    bench_with(
        &mut group,
        group_name,
        "palisade Retry, POST (not retryable)",
        ours(RetryLayer::new()),
        post,
    );
    bench_with(
        &mut group,
        group_name,
        "tower-resilience Retry (Arc'd request)",
        tower_resilience::retry::RetryLayer::<Arc<Get>, http::Response<()>, Infallible>::builder()
            .max_attempts(3)
            .build()
            .layer(service_fn(move |_: Arc<Get>| {
                ready(Ok::<_, Infallible>(ok()))
            })),
        move || Arc::new(get()),
    );
    group.finish();
}

/// tower_governor's key extractor for the `x-api-key` header.
#[derive(Clone)]
struct ApiKey;

impl tower_governor::key_extractor::KeyExtractor for ApiKey {
    type Key = String;
    fn extract<T>(&self, req: &http::Request<T>) -> Result<String, tower_governor::GovernorError> {
        req.headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}

#[allow(clippy::needless_borrows_for_generic_args)]
fn ratelimit(c: &mut Criterion) {
    if skipped("rate limit (10,000 keys)") {
        return;
    }
    use palisade::key::HeaderKey;
    use palisade::ratelimit::{Quota, RateLimitLayer};
    use std::cell::Cell;

    let rt = runtime();
    let _guard = rt.enter();
    let keys: Vec<http::HeaderValue> = (0..10_000)
        .map(|i| http::HeaderValue::from_str(&format!("key-{i}")).unwrap())
        .collect();
    let next = Cell::new(0usize);
    let make = || {
        let i = next.get();
        next.set((i + 1) % keys.len());
        let mut req = http::Request::new(());
        req.headers_mut().insert("x-api-key", keys[i].clone());
        req
    };
    type Res = http::Response<axum::body::Body>;
    let ok = || -> Res { http::Response::new(axum::body::Body::empty()) };
    let quota = || Quota::per_second("default", 1_000_000).unwrap();
    let palisade_layer = |headers: bool| {
        RateLimitLayer::new(
            HeaderKey::new(http::HeaderName::from_static("x-api-key")),
            quota(),
        )
        .response_headers(headers)
        .layer(service_fn(move |_: Req| ready(Ok::<_, Infallible>(ok()))))
    };
    let governor = {
        let conf = tower_governor::governor::GovernorConfigBuilder::default()
            .per_nanosecond(1)
            .burst_size(1_000_000)
            .key_extractor(ApiKey)
            .finish()
            .unwrap();
        tower_governor::GovernorLayer::new(conf)
            .layer(service_fn(move |_: Req| ready(Ok::<_, Infallible>(ok()))))
    };

    let group_name = "rate limit (10,000 keys)";
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    bench_with(
        &mut group,
        group_name,
        "bare service_fn",
        service_fn(move |_: Req| ready(Ok::<_, Infallible>(ok()))),
        &make,
    );
    bench_with(
        &mut group,
        group_name,
        "palisade RateLimit (no response headers)",
        palisade_layer(false),
        &make,
    );
    bench_with(
        &mut group,
        group_name,
        "palisade RateLimit (default: RateLimit headers)",
        palisade_layer(true),
        &make,
    );
    bench_with(
        &mut group,
        group_name,
        "tower_governor Governor",
        governor,
        &make,
    );
    // governor's keyed limiter called directly, keyed by the same header: the floor a keyed
    // limiter's decision can be compared with.
    let limiter = std::sync::Arc::new(governor::RateLimiter::keyed(governor::Quota::per_second(
        std::num::NonZeroU32::new(1_000_000).unwrap(),
    )));
    bench_with(
        &mut group,
        group_name,
        "governor check_key (header value key)",
        service_fn(move |req: Req| {
            let key = req.headers().get("x-api-key").cloned();
            let allowed = key.is_some_and(|k| limiter.check_key(&k).is_ok());
            assert!(allowed);
            ready(Ok::<_, Infallible>(ok()))
        }),
        &make,
    );
    group.finish();
}

/// A rate limit on one global key, next to tower_governor's global layer and governor's
/// direct limiter, on the same `http::Request<()>`.
fn ratelimit_global(c: &mut Criterion) {
    if skipped("rate limit (global key)") {
        return;
    }
    use palisade::key::GlobalKey;
    use palisade::ratelimit::{Quota, RateLimitLayer};

    let rt = runtime();
    let _guard = rt.enter();
    type Res = http::Response<axum::body::Body>;
    let ok = || -> Res { http::Response::new(axum::body::Body::empty()) };
    let palisade_layer = |headers: bool| {
        RateLimitLayer::new(
            GlobalKey,
            Quota::per_second("global", 1_000_000_000).unwrap(),
        )
        .response_headers(headers)
        .layer(service_fn(move |_: Req| ready(Ok::<_, Infallible>(ok()))))
    };
    let governor_layer = {
        let conf = tower_governor::governor::GovernorConfigBuilder::default()
            .per_nanosecond(1)
            .burst_size(1_000_000_000)
            .key_extractor(tower_governor::key_extractor::GlobalKeyExtractor)
            .finish()
            .unwrap();
        tower_governor::GovernorLayer::new(conf)
            .layer(service_fn(move |_: Req| ready(Ok::<_, Infallible>(ok()))))
    };
    let limiter = std::sync::Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
        std::num::NonZeroU32::new(1_000_000_000).unwrap(),
    )));

    let group_name = "rate limit (global key)";
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for ext in [false, true] {
        let suffix = if ext { ", request with extensions" } else { "" };
        bench_one(
            &mut group,
            group_name,
            &format!("bare service_fn{suffix}"),
            service_fn(move |_: Req| ready(Ok::<_, Infallible>(ok()))),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            &format!("palisade RateLimit (no response headers){suffix}"),
            palisade_layer(false),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            &format!("palisade RateLimit (default: RateLimit headers){suffix}"),
            palisade_layer(true),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            &format!("tower_governor Governor (global key){suffix}"),
            governor_layer.clone(),
            ext,
        );
        let limiter = limiter.clone();
        bench_one(
            &mut group,
            group_name,
            &format!("governor check (direct){suffix}"),
            service_fn(move |_: Req| {
                assert!(limiter.check().is_ok());
                ready(Ok::<_, Infallible>(ok()))
            }),
            ext,
        );
    }
    group.finish();
}

/// The lean four-layer stack, outermost first: rate limit (global key) → breaker → bulkhead
/// → timeout, on an `http::Request<()>`; next to tower's three layers (rate limit,
/// concurrency limit, timeout) and tower-resilience's four.
fn four_layers(c: &mut Criterion) {
    if skipped("four layers (rate limit, breaker, bulkhead, timeout)") {
        return;
    }
    use palisade::breaker::CircuitBreakerLayer;
    use palisade::bulkhead::BulkheadLayer;
    use palisade::key::GlobalKey;
    use palisade::ratelimit::{Quota, RateLimitLayer};
    use tower::ServiceBuilder;

    let rt = runtime();
    let _guard = rt.enter();
    type Res = http::Response<()>;
    let d = Duration::from_secs(30);
    let inner = || service_fn(|_: Req| ready(Ok::<_, Infallible>(Res::new(()))));
    let ours = |defaults: bool| {
        let mut rate = RateLimitLayer::new(
            GlobalKey,
            Quota::per_second("stack", 1_000_000_000).unwrap(),
        );
        let mut timeout = TimeoutLayer::new(d);
        if !defaults {
            rate = rate.response_headers(false);
            timeout = timeout.insert_deadline(false);
        }
        ServiceBuilder::new()
            .layer(rate)
            .layer(CircuitBreakerLayer::builder().build().unwrap())
            .layer(
                BulkheadLayer::builder()
                    .max_concurrent(1_000)
                    .release_on_response()
                    .build()
                    .unwrap(),
            )
            .layer(timeout)
            .service(inner())
    };
    let tower_stack = || {
        ServiceBuilder::new()
            .rate_limit(1_000_000_000, Duration::from_secs(1))
            .concurrency_limit(1_000)
            .timeout(d)
            .service(inner())
    };
    let theirs = || {
        use tower_resilience::{bulkhead, circuitbreaker, ratelimiter, timelimiter};
        ServiceBuilder::new()
            .layer(
                ratelimiter::RateLimiterLayer::per_second(1_000_000_000)
                    .build()
                    .unwrap(),
            )
            .layer(
                circuitbreaker::CircuitBreakerLayer::builder()
                    .build()
                    .unwrap(),
            )
            .layer(
                bulkhead::BulkheadLayer::builder()
                    .max_concurrent_calls(1_000)
                    .build()
                    .unwrap(),
            )
            .layer(
                timelimiter::TimeLimiterLayer::builder()
                    .timeout_duration(d)
                    .build(),
            )
            .service(inner())
    };

    let group_name = "four layers (rate limit, breaker, bulkhead, timeout)";
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for ext in [false, true] {
        let suffix = if ext { ", request with extensions" } else { "" };
        bench_one(
            &mut group,
            group_name,
            &format!("bare service_fn{suffix}"),
            inner(),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            &format!("palisade lean (no RateLimit headers, no Deadline){suffix}"),
            ours(false),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            &format!("palisade defaults{suffix}"),
            ours(true),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            &format!("tower (rate limit, concurrency limit, timeout){suffix}"),
            tower_stack(),
            ext,
        );
        bench_one(
            &mut group,
            group_name,
            &format!("tower-resilience{suffix}"),
            theirs(),
            ext,
        );
    }
    group.finish();
}

/// The full default stack, outermost first: rate limit → timeout → retry → breaker →
/// bulkhead, next to tower-resilience's equivalent (its rate limiter is global, so ours uses
/// `GlobalKey`), on a GET that succeeds at once.
fn stack(c: &mut Criterion) {
    if skipped("full stack (GET, success)") {
        return;
    }
    use bytes::Bytes;
    use http_body_util::Empty;
    use palisade::breaker::CircuitBreakerLayer;
    use palisade::bulkhead::BulkheadLayer;
    use palisade::key::GlobalKey;
    use palisade::ratelimit::{Quota, RateLimitLayer};
    use palisade::retry::{RetryBody, RetryLayer};
    use std::sync::Arc;
    use tower::ServiceBuilder;

    let rt = runtime();
    let _guard = rt.enter();
    type Res = http::Response<()>;
    let get = || api_request(http::Method::GET);
    let d = Duration::from_secs(30);
    let ours = |headers: bool| {
        ServiceBuilder::new()
            .layer(
                RateLimitLayer::new(
                    GlobalKey,
                    Quota::per_second("stack", 1_000_000_000).unwrap(),
                )
                .response_headers(headers),
            )
            .layer(TimeoutLayer::new(d))
            .layer(RetryLayer::new())
            .layer(CircuitBreakerLayer::builder().build().unwrap())
            .layer(
                BulkheadLayer::builder()
                    .max_concurrent(1_000)
                    .release_on_response()
                    .build()
                    .unwrap(),
            )
            .service(service_fn(|_: http::Request<RetryBody<Empty<Bytes>>>| {
                ready(Ok::<_, Infallible>(Res::new(())))
            }))
    };
    let theirs = || {
        use tower_resilience::{bulkhead, circuitbreaker, ratelimiter, retry, timelimiter};
        ServiceBuilder::new()
            .layer(
                ratelimiter::RateLimiterLayer::per_second(1_000_000_000)
                    .build()
                    .unwrap(),
            )
            .layer(
                timelimiter::TimeLimiterLayer::builder()
                    .timeout_duration(d)
                    .build(),
            )
            .layer(
                retry::RetryLayer::<Arc<Get>, Res, _>::builder()
                    .max_attempts(3)
                    .build(),
            )
            .layer(
                circuitbreaker::CircuitBreakerLayer::builder()
                    .build()
                    .unwrap(),
            )
            .layer(
                bulkhead::BulkheadLayer::builder()
                    .max_concurrent_calls(1_000)
                    .build()
                    .unwrap(),
            )
            .service(service_fn(|_: Arc<Get>| {
                ready(Ok::<_, Infallible>(Res::new(())))
            }))
    };

    let group_name = "full stack (GET, success)";
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    bench_with(
        &mut group,
        group_name,
        "bare service_fn",
        service_fn(|_: Get| ready(Ok::<_, Infallible>(Res::new(())))),
        get,
    );
    bench_with(
        &mut group,
        group_name,
        "palisade (default: RateLimit headers)",
        ours(true),
        get,
    );
    bench_with(
        &mut group,
        group_name,
        "palisade (no RateLimit headers)",
        ours(false),
        get,
    );
    bench_with(
        &mut group,
        group_name,
        "tower-resilience (Arc'd request)",
        theirs(),
        move || Arc::new(get()),
    );
    group.finish();
}

criterion_group!(
    benches,
    timeout,
    breaker,
    bulkhead,
    retry,
    ratelimit,
    ratelimit_global,
    four_layers,
    stack
);
criterion_main!(benches);
