//! A fresh hit on the in-memory store, 1 KiB body held as `Bytes`: Palisade's `CacheLayer`
//! next to tower-resilience's cache layer on the same request, and a bare service for
//! reference. Before criterion runs, allocations per hit are counted with a counting
//! global allocator (10,000 hits after 10,000 of warm-up).
//!
//! `cargo bench -p palisade-cache --bench cache`
//!
//! `CACHE_CALLS=n CACHE_ONLY=<palisade|tower_resilience|bare_service>`: build that one
//! contender, answer `n` hits with it and nothing else (no allocation count, no criterion),
//! for counting instructions under callgrind, which the machine's load does not change.
//! Instructions per hit are the difference between two counts over the difference in calls
//! (start-up and the first, storing request cancel out):
//!
//! ```text
//! CACHE_CALLS=20000 CACHE_ONLY=palisade \
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/cache-<hash> --bench
//! # the same with CACHE_CALLS=40000; (total at 40000 − total at 20000) / 20000
//! ```
//!
//! tower-resilience's layer caches any `Clone` response; `http::Response` is not `Clone`,
//! so its inner service answers the same status, header map and body as a tuple, turned
//! into an `http::Response` after the hit (a move, no allocation). Its key is a 64-bit hash
//! of host, path and query (no allocation either), as Palisade's primary key.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use palisade_cache::CacheLayer;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

type Tuple = (StatusCode, HeaderMap, Bytes);

fn request() -> Request<()> {
    Request::get("/items?page=2")
        .header("host", "example.com")
        .header("accept", "*/*")
        .body(())
        .unwrap()
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("cache-control", HeaderValue::from_static("max-age=3600"));
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    h.insert("etag", HeaderValue::from_static("\"v1\""));
    h
}

fn body() -> Bytes {
    Bytes::from(vec![b'x'; 1024])
}

/// Polls `fut` once; a hit must be ready at once (both layers answer hits without waiting).
fn now<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a hit is ready at once"),
    }
}

/// A closure answering one request through a service that has already stored it.
fn palisade() -> impl FnMut(Request<()>) -> StatusCode {
    let body = body();
    let mut svc = CacheLayer::memory(64 << 20).layer(service_fn(move |_req: Request<()>| {
        let mut res = Response::new(Full::new(body.clone()));
        *res.headers_mut() = headers();
        ready(Ok::<_, Infallible>(res))
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        use tower::ServiceExt;
        svc.ready().await.unwrap().call(request()).await.unwrap();
    });
    move |req| {
        let _ = now(std::future::poll_fn(|cx| svc.poll_ready(cx)));
        now(svc.call(req)).unwrap().status()
    }
}

fn tower_resilience() -> impl FnMut(Request<()>) -> StatusCode {
    let body = body();
    let layer = tower_resilience::cache::CacheLayer::builder()
        .max_size(64 << 10)
        .ttl(Duration::from_secs(3600))
        .key_extractor(|req: &Request<()>| {
            let mut h = DefaultHasher::new();
            req.headers()
                .get("host")
                .map(HeaderValue::as_bytes)
                .hash(&mut h);
            req.uri()
                .path_and_query()
                .map(http::uri::PathAndQuery::as_str)
                .hash(&mut h);
            h.finish()
        })
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(move |_req: Request<()>| {
        ready(Ok::<Tuple, Infallible>((
            StatusCode::OK,
            headers(),
            body.clone(),
        )))
    }));
    let _ = now(svc.call(request()));
    move |req| {
        let _ = now(std::future::poll_fn(|cx| svc.poll_ready(cx)));
        let (status, headers, body) = now(svc.call(req)).unwrap();
        let mut res = Response::new(Full::new(body));
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res.status()
    }
}

fn bare() -> impl FnMut(Request<()>) -> StatusCode {
    let body = body();
    let mut svc = service_fn(move |_req: Request<()>| {
        let mut res = Response::new(Full::new(body.clone()));
        *res.headers_mut() = headers();
        ready(Ok::<_, Infallible>(res))
    });
    move |req| now(svc.call(req)).unwrap().status()
}

fn allocations(name: &str, mut hit: impl FnMut(Request<()>) -> StatusCode) {
    const N: usize = 10_000;
    for _ in 0..N {
        assert_eq!(hit(request()), StatusCode::OK);
    }
    let reqs: Vec<_> = (0..N).map(|_| request()).collect();
    let region = Region::new(GLOBAL);
    for req in reqs {
        assert_eq!(hit(req), StatusCode::OK);
    }
    let c = region.change();
    println!(
        "{name}: {:.3} allocations, {:.0} bytes allocated per hit",
        c.allocations as f64 / N as f64,
        c.bytes_allocated as f64 / N as f64
    );
}

fn benches(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("fresh_hit_1KiB");
    group.throughput(Throughput::Elements(1));
    let mut hit = palisade();
    group.bench_function("palisade", |b| {
        b.iter_batched(
            request,
            |req| black_box(hit(req)),
            criterion::BatchSize::SmallInput,
        );
    });
    let mut tr = tower_resilience();
    group.bench_function("tower_resilience", |b| {
        b.iter_batched(
            request,
            |req| black_box(tr(req)),
            criterion::BatchSize::SmallInput,
        );
    });
    let mut plain = bare();
    group.bench_function("bare_service", |b| {
        b.iter_batched(
            request,
            |req| black_box(plain(req)),
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// Instruction-count mode: `CACHE_CALLS` hits on the contender named by `CACHE_ONLY`.
fn counted(calls: usize, only: &str) {
    fn run(calls: usize, mut hit: impl FnMut(Request<()>) -> StatusCode) {
        for _ in 0..calls {
            assert_eq!(black_box(hit(black_box(request()))), StatusCode::OK);
        }
    }
    match only {
        "palisade" => run(calls, palisade()),
        "tower_resilience" => run(calls, tower_resilience()),
        "bare_service" => run(calls, bare()),
        other => panic!("CACHE_ONLY={other}: palisade, tower_resilience or bare_service"),
    }
    println!("counted {only}: {calls} calls");
}

fn main() {
    if let Some(calls) = std::env::var("CACHE_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let only = std::env::var("CACHE_ONLY").unwrap_or_else(|_| "palisade".into());
        counted(calls, &only);
        return;
    }
    allocations("palisade", palisade());
    allocations("tower_resilience", tower_resilience());
    allocations("bare_service", bare());
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
