//! The cache's own miss coalescing: concurrent misses of one key make one upstream call;
//! cancelled waiters and cancelled leaders; responses that are not stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_cache::{Cache, CacheBody, CacheEvent, CacheLayer, MemoryStore};
use palisade_core::{BoxError, Event, Listeners};
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::support::layer;

type Origin = tower::util::BoxCloneSyncService<Request<()>, Response<Full<Bytes>>, BoxError>;

/// An origin taking one second per call, counting calls, answering `cache_control` (or an
/// error when `None`).
fn slow_origin(calls: Arc<AtomicUsize>, cache_control: Option<&'static str>) -> Origin {
    tower::util::BoxCloneSyncService::new(service_fn(move |_req: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(cc) = cache_control else {
                return Err::<_, BoxError>("upstream failed".into());
            };
            Ok(Response::builder()
                .header("cache-control", cc)
                .body(Full::new(Bytes::from_static(b"shared")))
                .unwrap())
        }
    }))
}

/// Names of the events seen, in order.
fn recorder() -> (Listeners<CacheEvent>, Arc<Mutex<Vec<&'static str>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let listeners = Listeners::new().on(move |e: &CacheEvent| log.lock().unwrap().push(e.name()));
    (listeners, seen)
}

fn count(seen: &Mutex<Vec<&'static str>>, name: &str) -> usize {
    seen.lock().unwrap().iter().filter(|n| **n == name).count()
}

fn get() -> Request<()> {
    crate::support::get("/a")
}

type Answer = Result<(Option<String>, Bytes), BoxError>;
type Call = tokio::task::JoinHandle<Result<Response<CacheBody<Full<Bytes>>>, BoxError>>;

/// Sends a `GET /a` on its own task.
fn spawn(svc: &Cache<Origin, MemoryStore>) -> Call {
    tokio::spawn(svc.clone().oneshot(get()))
}

/// The `x-cache` label and body of a spawned call.
async fn answer(call: Call) -> Answer {
    let res = call.await.expect("the task panicked or was cancelled")?;
    let x_cache = res
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((x_cache, res.into_body().collect().await?.to_bytes()))
}

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_identical_misses_make_one_upstream_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (listeners, seen) = recorder();
    let svc = layer()
        .listeners(listeners)
        .layer(slow_origin(calls.clone(), Some("max-age=60")));
    let tasks: Vec<_> = (0..1000).map(|_| spawn(&svc)).collect();
    tokio::task::yield_now().await;
    assert_eq!(svc.misses_in_flight(), 1);
    let mut labels = std::collections::HashMap::new();
    for t in tasks {
        let (label, bytes) = answer(t).await.unwrap();
        assert_eq!(bytes, "shared");
        *labels.entry(label.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(labels.get("miss"), Some(&1));
    assert_eq!(labels.get("hit"), Some(&999));
    assert_eq!(svc.misses_in_flight(), 0);
    assert_eq!(count(&seen, "miss"), 1);
    assert_eq!(count(&seen, "stored"), 1);
    assert_eq!(count(&seen, "coalesced"), 999);
    assert_eq!(count(&seen, "hit"), 999);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_does_not_cancel_the_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer().layer(slow_origin(calls.clone(), Some("max-age=60")));
    let leader = spawn(&svc);
    tokio::task::yield_now().await;
    let follower = spawn(&svc);
    tokio::task::yield_now().await;
    follower.abort();
    assert!(follower.await.unwrap_err().is_cancelled());
    let (label, bytes) = answer(leader).await.unwrap();
    assert_eq!(
        (label.as_deref(), &bytes[..]),
        (Some("miss"), &b"shared"[..])
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The leader's response was stored: the next request is a hit.
    let (label, _) = answer(spawn(&svc)).await.unwrap();
    assert_eq!(label.as_deref(), Some("hit"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_over_to_one_waiter() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (listeners, seen) = recorder();
    let svc = layer()
        .listeners(listeners)
        .layer(slow_origin(calls.clone(), Some("max-age=60")));
    let leader = spawn(&svc);
    tokio::task::yield_now().await;
    let followers: Vec<_> = (0..3).map(|_| spawn(&svc)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    leader.abort();
    let mut labels = Vec::new();
    for f in followers {
        let (label, bytes) = tokio::time::timeout(Duration::from_secs(5), answer(f))
            .await
            .expect("a waiter hangs")
            .unwrap();
        assert_eq!(bytes, "shared");
        labels.push(label.unwrap());
    }
    labels.sort();
    assert_eq!(labels, ["hit", "hit", "miss"]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one new leader, not one call each"
    );
    assert_eq!(count(&seen, "coalesced"), 2);
    assert_eq!(svc.misses_in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiters_go_upstream_alone_when_nothing_was_stored() {
    // `no-store`: the leader's answer cannot serve the others.
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer().layer(slow_origin(calls.clone(), Some("no-store")));
    let tasks: Vec<_> = (0..3).map(|_| spawn(&svc)).collect();
    for t in tasks {
        assert_eq!(answer(t).await.unwrap().1, "shared");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // An upstream error: each waiter gets its own answer (the error type is the inner
    // service's and cannot be copied).
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer().layer(slow_origin(calls.clone(), None));
    let tasks: Vec<_> = (0..3).map(|_| spawn(&svc)).collect();
    for t in tasks {
        assert_eq!(answer(t).await.unwrap_err().to_string(), "upstream failed");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(svc.misses_in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn only_plain_gets_wait_and_coalescing_can_be_turned_off() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer()
        .coalesce(false)
        .layer(slow_origin(calls.clone(), Some("max-age=60")));
    let tasks: Vec<_> = (0..3).map(|_| spawn(&svc)).collect();
    for t in tasks {
        assert_eq!(answer(t).await.unwrap().0.as_deref(), Some("miss"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // A range request does not wait for a plain GET (its 206 is never stored).
    let calls = Arc::new(AtomicUsize::new(0));
    let svc: Cache<Origin, MemoryStore> =
        CacheLayer::memory(1 << 20).layer(slow_origin(calls.clone(), Some("max-age=60")));
    let plain = spawn(&svc);
    tokio::task::yield_now().await;
    let mut ranged = svc.clone();
    let range = crate::support::req("GET", "/a", &[("range", "bytes=0-1")]);
    let res = ranged.ready().await.unwrap().call(range).await.unwrap();
    assert_eq!(res.status(), 200, "the origin ignores ranges");
    answer(plain).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
