//! The success path of a retryable request allocates nothing of its own: the first attempt
//! is sent with the original head, and the copy kept for retries goes into reused buffers.
//! (A counting global allocator; this file holds one test so nothing else runs meanwhile.)

use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Empty, Full};
use palisade_retry::{HedgeLayer, ReplayBody, RetryLayer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn call<S, B>(svc: &mut S, req: Request<B>)
where
    S: Service<Request<B>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(res)) => assert_eq!(res.status(), 200),
        _ => panic!("not ready at once"),
    }
}

/// Calls per measurement.
const N: usize = 1000;

/// Allocations made by `N` calls, the requests being built before counting starts: the
/// fewest of three rounds. The allocator is global, so the test harness's own thread can
/// allocate during a round on a loaded machine (seen once: 4 in 1,000 calls); an allocation
/// of the layer's own shows in every round (at least `N`), so the minimum still catches it.
fn allocs<B>(
    svc: &mut impl Service<Request<B>, Response = Response<()>, Error = impl std::fmt::Debug>,
    make: impl Fn() -> Request<B>,
) -> usize {
    call(svc, make()); // warm up (the per-thread buffer pool)
    (0..3)
        .map(|_| {
            let reqs: Vec<_> = (0..N).map(|_| make()).collect();
            let region = Region::new(GLOBAL);
            for req in reqs {
                call(svc, req);
            }
            region.change().allocations
        })
        .min()
        .unwrap_or(usize::MAX)
}

fn ok<Q>(_req: Q) -> std::future::Ready<Result<Response<()>, Infallible>> {
    ready(Ok(Response::new(())))
}

#[test]
fn retryable_success_path_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();

    // A GET as an application builds it: URI and header value from `&str` (their `Bytes`
    // would allocate on a first clone), default budget.
    let mut svc = RetryLayer::new().layer(service_fn(ok::<Request<ReplayBody<_>>>));
    let get = || {
        Request::get("/items?page=2")
            .header("accept", "application/json")
            .header("x-request-id", "5f0c2a")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(allocs(&mut svc, get), 0);

    // A PUT with a static body (buffered for replay without copying).
    let mut svc = RetryLayer::new().layer(service_fn(ok::<Request<ReplayBody<_>>>));
    let put = || {
        Request::put("https://api.example.com/items/7")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"n\":7}")))
            .unwrap()
    };
    assert_eq!(allocs(&mut svc, put), 0);

    // Extensions are the exception: `Extensions::clone` allocates its map and each value.
    let mut svc = RetryLayer::new()
        .no_budget()
        .layer(service_fn(ok::<Request<ReplayBody<_>>>));
    let with_ext = || {
        Request::get("/")
            .extension(7u32)
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let n = allocs(&mut svc, with_ext);
    assert!(n > 0 && n <= 3 * N, "{n}");

    // Hedging, a fixed or learned delay, answered before it: the head copy is pooled, the
    // timer inline, and recording a latency is an atomic add.
    let get = || {
        Request::get("/items?page=2")
            .header("accept", "application/json")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let mut svc = HedgeLayer::new(std::time::Duration::from_millis(50)).layer(service_fn(ok));
    assert_eq!(allocs(&mut svc, get), 0);
    let learned = HedgeLayer::builder().min_data_points(1).build().unwrap();
    let mut svc = learned.layer(service_fn(ok));
    call(&mut svc, get()); // one latency learned, usable from the next period on
    rt.block_on(tokio::time::advance(std::time::Duration::from_secs(10)));
    assert!(learned.current_delay().is_some());
    assert_eq!(allocs(&mut svc, get), 0);
}
