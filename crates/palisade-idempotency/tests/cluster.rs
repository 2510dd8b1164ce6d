//! `RedisStore` and `RedisLock` on a real 3-primary Redis Cluster, started by the test
//! from `redis-server` on free 127.0.0.1 ports and stopped at the end (never the shared
//! Redis): every script touches one hash-tagged slot. Outside CI a machine without
//! `redis-server` skips the test; under `CI=true` it fails.
#![cfg(feature = "redis-cluster")]

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use palisade_idempotency::{Begin, DistributedLock, RedisLock, RedisStore, Store, StoredResponse};
use palisade_test::redis_cluster::RedisCluster;

fn record(body: &'static str) -> StoredResponse {
    StoredResponse {
        status: StatusCode::CREATED,
        headers: vec![],
        body: Bytes::from_static(body.as_bytes()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_lock_on_a_three_primary_cluster() {
    let cluster = match RedisCluster::start(3) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "a Redis Cluster is required under CI: {e}"
            );
            eprintln!("skipping: {e}");
            return;
        }
    };
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let conn = client.get_async_connection().await.unwrap();

    let store = RedisStore::new(conn.clone(), "idem:");
    let (lease, ttl) = (Duration::from_secs(5), Duration::from_secs(60));
    for k in 0..20 {
        let key = format!("order-{k}");
        let fp = [k as u8; 32];
        let Begin::Started {
            fencing_token: t, ..
        } = store.begin(&key, &fp, lease, ttl).await.unwrap()
        else {
            panic!("{key}: first begin must start")
        };
        assert_eq!(
            store.begin(&key, &fp, lease, ttl).await.unwrap(),
            Begin::InFlight
        );
        assert!(store.renew(&key, t, lease).await.unwrap());
        assert!(store.complete(&key, t, &record("done"), ttl).await.unwrap());
        match store.begin(&key, &fp, lease, ttl).await.unwrap() {
            Begin::Completed(r) => assert_eq!(*r, record("done")),
            other => panic!("{key}: {other:?}"),
        }
    }

    // The lock and its fence are two keys of one slot.
    let lock = RedisLock::new(conn, "lock:");
    for k in 0..20 {
        let name = format!("job-{k}");
        let t1 = lock.acquire(&name, lease).await.unwrap().unwrap();
        assert_eq!(lock.acquire(&name, lease).await.unwrap(), None);
        assert!(lock.renew(&name, t1, lease).await.unwrap());
        assert!(lock.release(&name, t1).await.unwrap());
        let t2 = lock.acquire(&name, lease).await.unwrap().unwrap();
        assert!(t2 > t1, "fencing tokens grow");
    }
    let used = cluster
        .ports()
        .iter()
        .filter(|&&p| !cluster.keys_on(p).is_empty())
        .count();
    assert_eq!(used, 3, "the keys spread over every primary");
    drop(cluster);
}
