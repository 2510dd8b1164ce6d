//! Events of the cache layer (core's event vocabulary, named by instance) and its
//! bytes-in-use gauge.

use std::sync::{Arc, Mutex};

use palisade_cache::{CacheEvent, CacheLayer, MemoryStore};
use palisade_core::event::UsageGauge;
use palisade_core::{Event, Listeners};
use tower::Layer;

use palisade_cache::Clock;

use crate::support::{advance, date, get, origin, resp, send, t0};

type Seen = Arc<Mutex<Vec<(&'static str, String, Option<&'static str>, Option<u64>)>>>;

fn recorder() -> (Listeners<CacheEvent>, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let listeners = Listeners::new().on(move |e: &CacheEvent| {
        assert_eq!(e.layer(), "cache");
        log.lock()
            .unwrap()
            .push((e.name(), e.instance().to_owned(), e.reason(), e.count()));
    });
    (listeners, seen)
}

fn names(seen: &Seen) -> Vec<&'static str> {
    seen.lock().unwrap().iter().map(|e| e.0).collect()
}

#[tokio::test(start_paused = true)]
async fn hit_miss_stale_revalidated_with_the_instance_name() {
    let o = origin(|r, n| {
        if r.headers().contains_key("if-none-match") {
            return resp(
                304,
                &[("date", &date(20 + n as i64)), ("etag", "\"v\"")],
                "",
            );
        }
        resp(
            200,
            &[
                ("cache-control", "max-age=10, stale-if-error=60"),
                ("date", &date(0)),
                ("etag", "\"v\""),
            ],
            "body",
        )
    });
    let (listeners, seen) = recorder();
    let mut svc = CacheLayer::memory(1 << 20)
        .clock(Clock::anchored(t0()))
        .name("pages")
        .listeners(listeners)
        .layer(o.clone());
    send(&mut svc, get("/a")).await; // miss, stored
    send(&mut svc, get("/a")).await; // hit
    advance(20).await;
    send(&mut svc, get("/a")).await; // stale: revalidated (304)
    let got = send(
        &mut svc,
        crate::support::req("GET", "/a", &[("cache-control", "max-stale")]),
    )
    .await; // fresh again after the 304: hit
    assert_eq!(got.status, 200);
    assert_eq!(
        names(&seen),
        ["miss", "stored", "hit", "revalidated", "hit"]
    );
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|e| e.1 == "pages"), "{seen:?}");
    let stored = &seen[1];
    assert!(stored.3.is_some_and(|b| b > 4), "bytes stored: {stored:?}");
}

#[tokio::test(start_paused = true)]
async fn stale_answers_are_stale_events() {
    let o = origin(|_, n| {
        if n == 1 {
            resp(
                200,
                &[
                    ("cache-control", "max-age=1, stale-if-error=60"),
                    ("date", &date(0)),
                ],
                "old",
            )
        } else {
            resp(503, &[], "down")
        }
    });
    let (listeners, seen) = recorder();
    let mut svc = crate::support::layer()
        .listeners(listeners)
        .layer(o.clone());
    send(&mut svc, get("/a")).await;
    advance(5).await;
    let got = send(&mut svc, get("/a")).await;
    assert_eq!((got.status.as_u16(), got.x_cache()), (200, Some("stale")));
    assert_eq!(names(&seen), ["miss", "stored", "stale"]);
}

#[tokio::test(start_paused = true)]
async fn evictions_are_events_and_bytes_in_use_is_a_gauge() {
    let o = origin(|_, _| {
        resp(
            200,
            &[("cache-control", "max-age=600")],
            // 1 KiB
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
    });
    let (listeners, seen) = recorder();
    let store = MemoryStore::new(16 << 10); // 16 KiB: a handful of 1 KiB responses
    let mut svc = CacheLayer::new(store.clone())
        .name("small")
        .listeners(listeners)
        .layer(o.clone());
    assert_eq!((svc.used(), svc.capacity()), (0, Some(16 << 10)));
    assert_eq!(svc.instance(), "small");
    for i in 0..64 {
        send(&mut svc, get(&format!("/item/{i}"))).await;
    }
    store.run_pending_tasks();
    let evicted: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == "evicted")
        .cloned()
        .collect();
    assert_eq!(evicted.len() as u64, store.evicted());
    assert!(!evicted.is_empty());
    assert!(
        evicted
            .iter()
            .all(|e| e.1 == "small" && e.2 == Some("size"))
    );
    assert!(evicted.iter().all(|e| e.3.is_some_and(|b| b > 1024)));
    assert_eq!(svc.used(), store.bytes_in_use());
    assert!(svc.used() > 0 && svc.used() <= 16 << 10, "{}", svc.used());
    assert_eq!(
        store.entry_count() + store.evicted(),
        64,
        "every response stored is held or evicted"
    );
}
