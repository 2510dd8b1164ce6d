//! Redis backend against the machine's Redis (`REDIS_URL`, default 127.0.0.1:6379), real
//! time, unique key prefixes. Outside CI a missing Redis skips the tests.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::Request;
use palisade_core::key::HeaderKey;
use palisade_core::{BoxError, RateLimited, StoreUnavailable};
use palisade_ratelimit::redis::RedisBackend;
use palisade_ratelimit::{FailAction, Quota, RateLimitEvent, RateLimitLayer};
use palisade_test::scripted::ScriptedResponse;
use palisade_test::{EventRecorder, ScriptedService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt};

type Res = ScriptedResponse;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade-test:{test}:{}:{nanos}:", std::process::id())
}

async fn connect(url: &str) -> Option<RedisBackend> {
    match tokio::time::timeout(Duration::from_secs(3), RedisBackend::connect(url)).await {
        Ok(Ok(b)) => Some(b),
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Redis at {url} is required under CI: {other:?}"
            );
            eprintln!("skipping: no Redis at {url}: {other:?}");
            None
        }
    }
}

/// `upstream`, as a service of `Request<()>` only (so `ready()` infers the request type).
fn app(
    upstream: &ScriptedService,
) -> impl Service<Request<()>, Response = Res, Error = BoxError, Future: Send> + Clone + use<> {
    upstream.clone()
}

fn req(key: &str) -> Request<()> {
    Request::get("/").header("x-api-key", key).body(()).unwrap()
}

fn api_key() -> HeaderKey {
    HeaderKey::new(http::HeaderName::from_static("x-api-key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_quota_on_redis_clock() {
    let url = redis_url();
    let (Some(a), Some(b)) = (connect(&url).await, connect(&url).await) else {
        return;
    };
    let prefix = unique_prefix("shared");
    // Generous timeout and fail-closed, so a slow machine cannot inflate the count.
    let mk = |backend: RedisBackend| {
        RateLimitLayer::new(api_key(), Quota::per_minute("default", 100).unwrap()).redis(
            "route",
            backend
                .prefix(&prefix)
                .timeout(Duration::from_secs(5))
                .on_failure(FailAction::Closed),
        )
    };
    let upstream = ScriptedService::new();
    let mut one = mk(a).layer(app(&upstream));
    let mut two = mk(b).layer(app(&upstream));

    let first = one.ready().await.unwrap().call(req("k1")).await.unwrap();
    assert_eq!(first.headers()["ratelimit"], "\"default\";r=99;t=1");
    let started = Instant::now();
    let mut allowed = 1;
    for i in 1..500 {
        let svc = if i % 2 == 0 { &mut one } else { &mut two };
        match svc.ready().await.unwrap().call(req("k1")).await {
            Ok(_) => allowed += 1,
            Err(e) => assert!(e.is::<RateLimited>(), "unexpected error: {e}"),
        }
    }
    let elapsed = started.elapsed();
    let refill = (elapsed.as_millis() / 600) as usize + 1;
    assert!(allowed >= 100, "allowed {allowed}");
    assert!(
        allowed <= 100 + refill,
        "allowed {allowed} > 100 + {refill} in {elapsed:?}"
    );
    assert_eq!(upstream.calls(), allowed);
    // Another key is independent.
    assert!(two.ready().await.unwrap().call(req("k2")).await.is_ok());

    // One key per quota, hash-tagged, expiring once the quota would be full again.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}route:{{k2}}:default");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 1_600, "{key} ttl {ttl} ms");
    let tat: i64 = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        tat > 1_700_000_000_000_000,
        "TAT in microseconds of Redis time: {tat}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_mode_through_redis_spaces_calls() {
    let Some(backend) = connect(&redis_url()).await else {
        return;
    };
    let layer = RateLimitLayer::new(api_key(), Quota::per_second("out", 10).unwrap().burst(1))
        .mode(palisade_ratelimit::RateLimitMode::Wait)
        .redis(
            "wait",
            backend
                .prefix(&unique_prefix("wait"))
                .timeout(Duration::from_secs(5))
                .on_failure(FailAction::Closed),
        );
    let upstream = ScriptedService::new();
    let mut svc = layer.layer(app(&upstream));
    let started = Instant::now();
    for _ in 0..5 {
        svc.ready().await.unwrap().call(req("w")).await.unwrap();
    }
    // One now, then one every 100 ms on Redis's clock.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(upstream.calls(), 5);
}

async fn pump<R: AsyncReadExt + Unpin, W: AsyncWriteExt + Unpin>(
    mut r: R,
    mut w: W,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP proxy to Redis that stops forwarding while `stalled` is set.
async fn stallable_proxy(stalled: Arc<AtomicBool>) -> String {
    let url = redis_url();
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(&hostport).await else {
                return;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pump(ri, wo, stalled.clone()));
            tokio::spawn(pump(ro, wi, stalled.clone()));
        }
    });
    format!("redis://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_redis_gives_the_fail_mode_within_the_timeout() {
    if connect(&redis_url()).await.is_none() {
        return;
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let proxy = stallable_proxy(stalled.clone()).await;
    let backend = RedisBackend::connect(&proxy)
        .await
        .unwrap()
        .prefix(&unique_prefix("stall"))
        .timeout(Duration::from_millis(50));
    let events = EventRecorder::new();
    let quota = Quota::per_minute("default", 1).unwrap();
    let upstream = ScriptedService::new();
    let mk = |action: FailAction, timeout: Duration| {
        RateLimitLayer::new(api_key(), quota.clone())
            .redis("stall", backend.clone().on_failure(action).timeout(timeout))
            .on_event(events.on())
            .layer(app(&upstream))
    };
    let fast = Duration::from_millis(50);
    let (closed, open, local) = (
        mk(FailAction::Closed, fast),
        mk(FailAction::Open, fast),
        mk(FailAction::Local, fast),
    );

    // While Redis answers, the shared limit applies: one per minute for "k" (a patient
    // instance, so a loaded machine cannot turn these into store failures).
    let patient = mk(FailAction::Closed, Duration::from_secs(5));
    assert!(patient.clone().oneshot(req("k")).await.is_ok());
    let err: BoxError = patient.clone().oneshot(req("k")).await.unwrap_err();
    assert!(err.is::<RateLimited>(), "{err}");

    stalled.store(true, Ordering::SeqCst);
    // A 50 ms timeout; the rest of the second only absorbs scheduling on a loaded CI machine.
    let bound = Duration::from_secs(1);

    let t = Instant::now();
    let err = closed.clone().oneshot(req("k")).await.unwrap_err();
    assert!(err.is::<StoreUnavailable>(), "closed: {err}");
    assert!(
        t.elapsed() >= Duration::from_millis(50) && t.elapsed() < bound,
        "{:?}",
        t.elapsed()
    );

    let t = Instant::now();
    assert!(open.clone().oneshot(req("k")).await.is_ok(), "open admits");
    assert!(t.elapsed() < bound, "{:?}", t.elapsed());

    // Local fallback: this instance's own 1/min for "k" (fresh locally) admits once.
    let t = Instant::now();
    assert!(local.clone().oneshot(req("k")).await.is_ok());
    let err = local.clone().oneshot(req("k")).await.unwrap_err();
    assert!(err.is::<RateLimited>(), "local: {err}");
    assert!(t.elapsed() < bound * 2, "{:?}", t.elapsed());

    assert_eq!(upstream.calls(), 3);
    let failures: Vec<FailAction> = events
        .events::<RateLimitEvent>()
        .iter()
        .filter_map(|e| match e {
            RateLimitEvent::StoreFailed { action, .. } => Some(*action),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        vec![
            FailAction::Closed,
            FailAction::Open,
            FailAction::Local,
            FailAction::Local
        ]
    );
    stalled.store(false, Ordering::SeqCst);
}

#[cfg(feature = "serde")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_with_a_redis_section() {
    if connect(&redis_url()).await.is_none() {
        return;
    }
    let json = serde_json::json!({
        "key": { "type": "header", "name": "x-api-key" },
        "quotas": [{ "name": "default", "limit": 2, "window": "1m" }],
        "redis": { "url": redis_url(), "layer_name": "config", "prefix": unique_prefix("config"), "timeout": "5s", "on_failure": "closed" }
    });
    let config: palisade_ratelimit::RateLimitConfig = serde_json::from_value(json).unwrap();
    let upstream = ScriptedService::new();
    let svc = config.build().unwrap().layer(app(&upstream));
    assert!(svc.clone().oneshot(req("c")).await.is_ok());
    assert!(svc.clone().oneshot(req("c")).await.is_ok());
    let err = svc.clone().oneshot(req("c")).await.unwrap_err();
    assert!(err.is::<RateLimited>(), "{err}");
    assert_eq!(upstream.calls(), 2);

    let bad: palisade_ratelimit::RateLimitConfig = serde_json::from_value(
        serde_json::json!({ "redis": { "url": "nope://", "layer_name": "r" } }),
    )
    .unwrap();
    assert_eq!(bad.build().unwrap_err().field(), "redis.url");
    // Without a layer name two routes would share buckets: refused.
    let unnamed: palisade_ratelimit::RateLimitConfig =
        serde_json::from_value(serde_json::json!({ "redis": { "url": redis_url() } })).unwrap();
    assert_eq!(unnamed.build().unwrap_err().field(), "redis.layer_name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routes_with_one_policy_name_keep_separate_buckets() {
    let url = redis_url();
    let Some(backend) = connect(&url).await else {
        return;
    };
    let prefix = unique_prefix("routes");
    let backend = backend
        .prefix(&prefix)
        .timeout(Duration::from_secs(5))
        .on_failure(FailAction::Closed);
    let layer = |route: &str| {
        RateLimitLayer::new(api_key(), Quota::per_minute("default", 1).unwrap())
            .redis(route, backend.clone())
    };
    let upstream = ScriptedService::new();
    let mut pay = layer("pay").layer(app(&upstream));
    let mut search = layer("search").layer(app(&upstream));
    let mut pay_too = layer("pay").layer(app(&upstream));
    // One unit per route: the second route's first call is its own.
    assert!(pay.ready().await.unwrap().call(req("k1")).await.is_ok());
    assert!(search.ready().await.unwrap().call(req("k1")).await.is_ok());
    // Another instance of the same route shares the bucket.
    let e = pay_too
        .ready()
        .await
        .unwrap()
        .call(req("k1"))
        .await
        .unwrap_err();
    assert!(e.is::<RateLimited>(), "{e}");
    assert_eq!(upstream.calls(), 2);
    // A key holding the key syntax cannot reach another key's bucket.
    assert!(
        pay.ready()
            .await
            .unwrap()
            .call(req("k1}:default"))
            .await
            .is_ok()
    );

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{prefix}pay:{{k1%7D%3Adefault}}:default"),
            format!("{prefix}pay:{{k1}}:default"),
            format!("{prefix}search:{{k1}}:default"),
        ]
    );
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_hits_spends_several_units_at_once() {
    let url = redis_url();
    let Some(backend) = connect(&url).await else {
        return;
    };
    let prefix = unique_prefix("hits");
    let backend = backend
        .prefix(&prefix)
        .layer_name("hits")
        .timeout(Duration::from_secs(5));
    let set =
        palisade_ratelimit::QuotaSet::new([Quota::per_minute("default", 10).unwrap()]).unwrap();
    // 4 + 4 of 10 units admitted, 4 more refused (2 left), then 0 counts as 1.
    let d = backend.check_hits("k", &set, 4).await.unwrap();
    assert!(d.is_allowed());
    assert_eq!(d.states()[0].remaining, 6);
    let d = backend.check_hits("k", &set, 4).await.unwrap();
    assert_eq!(d.states()[0].remaining, 2);
    let d = backend.check_hits("k", &set, 4).await.unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.states()[0].remaining, 2);
    let d = backend.check_hits("k", &set, 0).await.unwrap();
    assert!(d.is_allowed());
    assert_eq!(d.states()[0].remaining, 1);
    // More units than the burst: never admitted, nothing spent.
    let d = backend.check_hits("other", &set, 11).await.unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.states()[0].remaining, 10);

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, [format!("{prefix}hits:{{k}}:default")]);
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Admitted requests out of `n` for `key`.
async fn admitted<S>(svc: &S, key: &str, n: usize) -> usize
where
    S: Service<Request<()>, Response = Res, Error = BoxError> + Clone,
{
    let mut ok = 0;
    for _ in 0..n {
        match svc.clone().oneshot(req(key)).await {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.is::<RateLimited>(), "unexpected error: {e}"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_leases_hold_units_and_give_back_the_unused_ones() {
    let url = redis_url();
    let (Some(a), Some(b)) = (connect(&url).await, connect(&url).await) else {
        return;
    };
    let prefix = unique_prefix("lease");
    // 20 per minute: no unit refills during the test (one per 3 s).
    let quota = Quota::per_minute("m", 20).unwrap();
    let instance = |backend: RedisBackend, upstream: &ScriptedService| {
        let backend = backend
            .prefix(&prefix)
            .timeout(Duration::from_secs(5))
            .on_failure(FailAction::Closed)
            .lease(10, Duration::from_millis(300));
        let layer = RateLimitLayer::new(api_key(), quota.clone()).redis("lease", backend.clone());
        (backend, layer.layer(app(upstream)))
    };
    let upstream = ScriptedService::new();
    let (lease_a, one) = instance(a, &upstream);
    let (lease_b, two) = instance(b, &upstream);

    // `one` takes 10 units in one round trip and holds 9.
    assert_eq!(admitted(&one, "k", 1).await, 1);
    assert_eq!(lease_a.leased_units(), 9);
    // `two` gets the other 10 only: the units `one` holds are the accuracy cost.
    assert_eq!(admitted(&two, "k", 15).await, 10);
    assert_eq!(lease_b.leased_units(), 0);
    // `one` spends its 9 without a round trip, then is refused: 20 in all, never more.
    assert_eq!(admitted(&one, "k", 12).await, 9);
    assert_eq!(upstream.calls(), 20);

    // Unused units go back: `one` leases 10 of a fresh key and uses 1.
    assert_eq!(admitted(&one, "g", 1).await, 1);
    assert_eq!(lease_a.leased_units(), 9);
    assert_eq!(admitted(&two, "g", 20).await, 10);
    // Given back (e.g. at shutdown), the 9 are `two`'s to spend.
    assert_eq!(lease_a.return_leases().await.unwrap(), 9);
    assert_eq!(lease_a.leased_units(), 0);
    assert_eq!(admitted(&two, "g", 20).await, 9);

    // An ended lease gives its units back with the key's next round trip.
    assert_eq!(admitted(&one, "e", 1).await, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(lease_a.leased_units(), 9, "held until the next round trip");
    assert_eq!(admitted(&two, "e", 20).await, 10);
    // `one`'s next request gives 9 back and takes them again (9 conform, 1 used).
    assert_eq!(admitted(&one, "e", 1).await, 1);
    assert_eq!(lease_a.leased_units(), 8);
    assert_eq!(admitted(&one, "e", 20).await, 8);
    assert_eq!(admitted(&two, "e", 1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_quota_through_redis_never_refuses() {
    let Some(backend) = connect(&redis_url()).await else {
        return;
    };
    let set = palisade_ratelimit::QuotaSet::new([
        Quota::per_minute("old", 3).unwrap(),
        Quota::per_minute("new", 1).unwrap().shadow(true),
    ])
    .unwrap();
    let events = EventRecorder::new();
    let layer = RateLimitLayer::new(api_key(), set)
        .on_event(events.on())
        .redis(
            "shadow",
            backend
                .prefix(&unique_prefix("shadow"))
                .timeout(Duration::from_secs(5))
                .on_failure(FailAction::Closed),
        );
    let upstream = ScriptedService::new();
    let svc = layer.layer(app(&upstream));
    let mut fields = Vec::new();
    for _ in 0..3 {
        let res = svc.clone().oneshot(req("s")).await.unwrap();
        fields.push(res.headers()["ratelimit"].to_str().unwrap().to_owned());
    }
    // As in memory: the shadow quota took one unit; its refusals consumed nothing.
    assert_eq!(
        fields,
        [
            "\"old\";r=2;t=20, \"new\";r=0;t=60",
            "\"old\";r=1;t=40, \"new\";r=0;t=60",
            "\"old\";r=0;t=60, \"new\";r=0;t=60",
        ]
    );
    let err = svc.clone().oneshot(req("s")).await.unwrap_err();
    assert!(err.is::<RateLimited>(), "{err}");
    let kinds: Vec<&str> = events
        .events::<RateLimitEvent>()
        .iter()
        .map(|e| match e {
            RateLimitEvent::Allowed { .. } => "allowed",
            RateLimitEvent::WouldLimit { policies, .. } => {
                assert_eq!(policies, &["new"]);
                "would_limit"
            }
            RateLimitEvent::Limited {
                violated_policies, ..
            } => {
                assert_eq!(violated_policies, &["old"]);
                "limited"
            }
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["allowed", "would_limit", "would_limit", "limited"]);
}
