//! Per-host retry budgets keep memory bounded however many hosts a client meets: 100,000
//! distinct hosts through a layer capped at 1,000 leave the store at 1,000 budgets, the
//! heap under 1 MiB, and the last 40,000 hosts add nothing to it. (A counting global allocator; one test in this file,
//! so nothing else allocates meanwhile.)

use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::Empty;
use palisade_retry::budget::{KeyedBudget, TpsBudget};
use palisade_retry::{ReplayBody, RetryLayer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Bytes held now that were allocated since `region` started.
fn held(region: &Region<'_, std::alloc::System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hundred_thousand_hosts_keep_memory_bounded() {
    const MAX_HOSTS: usize = 1_000;
    let layer = RetryLayer::new().budget_per_host(KeyedBudget::new(
        MAX_HOSTS,
        Duration::from_secs(600),
        TpsBudget::default,
    ));
    let budgets = layer.get_budget_per_host().unwrap().clone();
    let mut svc = layer.layer(service_fn(
        |_req: Request<ReplayBody<Empty<bytes::Bytes>>>| {
            ready(Ok::<_, Infallible>(Response::new(())))
        },
    ));
    let mut cx = Context::from_waker(Waker::noop());
    let mut send = |i: usize| {
        let req = Request::get(format!("http://h{i}.example/"))
            .body(Empty::new())
            .unwrap();
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        match pin!(svc.call(req)).poll(&mut cx) {
            Poll::Ready(Ok(res)) => assert_eq!(res.status(), 200),
            _ => panic!("not ready at once"),
        }
    };
    let region = Region::new(GLOBAL);
    let mut held_after = Vec::new();
    for (from, to) in [(0, 10_000), (10_000, 60_000), (60_000, 100_000)] {
        for i in from..to {
            send(i);
        }
        assert_eq!(budgets.len(), MAX_HOSTS);
        held_after.push(held(&region));
    }
    println!("held after 10,000 / 60,000 / 100,000 hosts: {held_after:?} B");
    // 1,000 budgets (a TpsBudget, its key, the store's slots): well under 1 MiB.
    assert!(held_after.iter().all(|&b| b < 1 << 20), "{held_after:?}");
    // The store's hash map grows once, when the tombstones of evicted keys fill it (hashbrown
    // then doubles it rather than rehash in place); after that, more hosts add nothing.
    assert!(
        (held_after[2] - held_after[1]).abs() < 4 << 10,
        "{held_after:?}"
    );
}
