//! `RedisStore` against a live Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`).
//! Outside CI a missing Redis skips each test with a printed reason; under `CI=true` it
//! fails. Each test uses its own key prefix and deletes its keys. Real time, not paused:
//! a paused clock would run the store's timeouts out while Redis answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_cache::{CacheLayer, RedisStore};
use redis::aio::ConnectionManager;
use tower::Layer;

use crate::support::{get, origin, req, resp, send};

async fn conn() -> Option<ConnectionManager> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let attempt = async {
        let client = redis::Client::open(url.as_str())?;
        ConnectionManager::new(client).await
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(c)) => Some(c),
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Redis at {url} is required under CI: {other:?}"
            );
            eprintln!("skipping: Redis at {url} not reachable ({other:?})");
            None
        }
    }
}

/// A prefix of this test alone, and a guard deleting its keys when the test ends.
struct Keys {
    conn: ConnectionManager,
    prefix: String,
}

impl Keys {
    fn new(conn: &ConnectionManager, test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self {
            conn: conn.clone(),
            prefix: format!("palisade-test:cache:{test}:{}:{nanos}:", std::process::id()),
        }
    }

    async fn list(&self) -> Vec<String> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.sort();
        keys
    }

    async fn pttl(&self, key: &str) -> i64 {
        let mut conn = self.conn.clone();
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    async fn clean(self) {
        let keys = self.list().await;
        if !keys.is_empty() {
            let mut conn = self.conn.clone();
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn stores_serves_and_shares_entries_between_layers() {
    let Some(c) = conn().await else { return };
    let keys = Keys::new(&c, "share");
    let o = origin(|_, n| {
        resp(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"v\"")],
            if n == 1 { "first" } else { "second" },
        )
    });
    let store = RedisStore::new(c.clone()).prefix(&keys.prefix);
    let status = http::HeaderName::from_static("x-cache");
    let mut a = CacheLayer::new(store.clone())
        .status_header(status.clone())
        .layer(o.clone());
    let got = send(&mut a, get("/a")).await;
    assert_eq!(
        (got.x_cache(), &got.body[..]),
        (Some("miss"), &b"first"[..])
    );
    let stored = keys.list().await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].starts_with(&keys.prefix));
    assert_eq!(
        stored[0].len(),
        keys.prefix.len() + 16,
        "prefix + 16 hex digits"
    );
    // `PX`: the entry has a validator, so it is kept up to the layer's max TTL (one day).
    let pttl = keys.pttl(&stored[0]).await;
    assert!(pttl > 86_000_000 && pttl <= 86_400_000, "{pttl}");

    let got = send(&mut a, get("/a")).await;
    assert_eq!((got.x_cache(), &got.body[..]), (Some("hit"), &b"first"[..]));
    assert!(got.age().is_some_and(|age| age <= 1));
    // Another layer on the same Redis (another process, in effect) sees the entry.
    let mut b = CacheLayer::new(RedisStore::new(c.clone()).prefix(&keys.prefix))
        .status_header(status)
        .layer(o.clone());
    let got = send(&mut b, get("/a")).await;
    assert_eq!((got.x_cache(), &got.body[..]), (Some("hit"), &b"first"[..]));
    assert_eq!(o.calls(), 1);

    // A successful POST invalidates the entry in Redis.
    send(&mut b, req("POST", "/a", &[])).await;
    assert!(keys.list().await.is_empty());
    keys.clean().await;
}

#[tokio::test]
async fn values_over_the_cap_are_not_stored_and_ttl_follows_freshness() {
    let Some(c) = conn().await else { return };
    let keys = Keys::new(&c, "cap");
    let big: &'static str = Box::leak("x".repeat(4096).into_boxed_str());
    let o = origin(move |r, _| {
        if r.uri().path() == "/big" {
            resp(200, &[("cache-control", "max-age=60")], big)
        } else {
            resp(200, &[("cache-control", "max-age=5")], "small")
        }
    });
    let store = RedisStore::new(c.clone())
        .prefix(&keys.prefix)
        .max_value_bytes(2048);
    let mut svc = CacheLayer::new(store).layer(o.clone());
    assert_eq!(send(&mut svc, get("/big")).await.body.len(), 4096);
    assert_eq!(send(&mut svc, get("/big")).await.body.len(), 4096);
    assert_eq!(o.calls(), 2, "over the cap: not stored");
    assert!(keys.list().await.is_empty());

    send(&mut svc, get("/small")).await;
    let stored = keys.list().await;
    assert_eq!(stored.len(), 1);
    // No validator: kept while fresh (5 s), then gone.
    let pttl = keys.pttl(&stored[0]).await;
    assert!(pttl > 3_000 && pttl <= 5_000, "{pttl}");
    keys.clean().await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_miss_not_an_error() {
    // Nothing listens on port 1: every command fails fast and the origin answers.
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(50)))
        .set_number_of_retries(0);
    let Ok(conn) = ConnectionManager::new_lazy_with_config(client, config) else {
        panic!("a lazy connection manager is created without connecting");
    };
    let o = origin(|_, _| resp(200, &[("cache-control", "max-age=60")], "ok"));
    let store = RedisStore::new(conn).timeout(Duration::from_millis(200));
    let mut svc = CacheLayer::new(store).layer(o.clone());
    for _ in 0..2 {
        let got = send(&mut svc, get("/a")).await;
        assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(o.calls(), 2);
}
