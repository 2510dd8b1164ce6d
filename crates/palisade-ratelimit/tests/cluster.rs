//! The Redis backend on a real 3-primary Redis Cluster, started by the test from
//! `redis-server` on free 127.0.0.1 ports and stopped at the end (never the shared Redis).
//! Outside CI a machine without `redis-server` skips the test; under `CI=true` it fails.
#![cfg(feature = "redis-cluster")]

use std::time::Duration;

use http::Request;
use palisade_core::key::HeaderKey;
use palisade_core::{BoxError, RateLimited};
use palisade_ratelimit::redis::RedisBackend;
use palisade_ratelimit::{FailAction, Quota, QuotaSet, RateLimitLayer};
use palisade_test::ScriptedService;
use palisade_test::redis_cluster::RedisCluster;
use palisade_test::scripted::ScriptedResponse;
use tower::{Layer, Service, ServiceExt};

/// `upstream`, as a service of `Request<()>` only.
fn app(
    upstream: &ScriptedService,
) -> impl Service<Request<()>, Response = ScriptedResponse, Error = BoxError, Future: Send> + Clone + use<>
{
    upstream.clone()
}

fn cluster() -> Option<RedisCluster> {
    match RedisCluster::start(3) {
        Ok(c) => Some(c),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "a Redis Cluster is required under CI: {e}"
            );
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn req(key: &str) -> Request<()> {
    Request::get("/").header("x-api-key", key).body(()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_quota_decisions_on_a_three_primary_cluster() {
    let Some(cluster) = cluster() else { return };
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let backend = RedisBackend::connect_cluster(&urls)
        .await
        .unwrap()
        .timeout(Duration::from_secs(5))
        .on_failure(FailAction::Closed);
    // Two quotas per key: both keys of one decision must be in one slot (else CROSSSLOT).
    let set = QuotaSet::new([
        Quota::per_minute("min", 3).unwrap(),
        Quota::per_second("sec", 100).unwrap(),
    ])
    .unwrap();
    let layer = RateLimitLayer::new(
        HeaderKey::new(http::HeaderName::from_static("x-api-key")),
        set,
    )
    .redis("cluster", backend.clone());
    let svc = layer.layer(app(&ScriptedService::new()));
    for k in 0..30 {
        let key = format!("user-{k}");
        let mut admitted = 0;
        for _ in 0..5 {
            match svc.clone().oneshot(req(&key)).await {
                Ok(_) => admitted += 1,
                Err(e) => assert!(e.is::<RateLimited>(), "{key}: {e}"),
            }
        }
        assert_eq!(admitted, 3, "{key}");
    }
    // The keys spread over the primaries, each key's two quotas on one node.
    let mut nodes_used = 0;
    let mut total = 0;
    for &port in cluster.ports() {
        let keys = cluster.keys_on(port);
        total += keys.len();
        if !keys.is_empty() {
            nodes_used += 1;
        }
        for k in &keys {
            let tag = &k[k.find('{').unwrap()..=k.find('}').unwrap()];
            assert_eq!(
                keys.iter().filter(|o| o.contains(tag)).count(),
                2,
                "both quotas of {tag} on node {port}"
            );
        }
    }
    assert_eq!(total, 60);
    assert_eq!(nodes_used, 3, "30 keys over 3 primaries");

    // Lease mode and a shadow quota work there too.
    let leased = backend.clone().lease(5, Duration::from_millis(500));
    let svc = RateLimitLayer::new(
        HeaderKey::new(http::HeaderName::from_static("x-api-key")),
        Quota::per_minute("lease", 8).unwrap(),
    )
    .redis("cluster-lease", leased.clone())
    .layer(app(&ScriptedService::new()));
    let mut admitted = 0;
    for _ in 0..12 {
        if svc.clone().oneshot(req("leaser")).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 8);
    drop(cluster);
}
