//! AsyncJobLayer and JobStatusService on a Redis JobStore: two instances share the jobs and
//! the cap. Real Redis (REDIS_URL), real time, a unique key prefix deleted after.

use crate::support;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_messaging::jobs::{AsyncJobLayer, JobState, JobStatusService, JobStore};
use std::convert::Infallible;
use std::time::Duration;
use tower::{Layer, ServiceExt, service_fn};

async fn redis() -> Option<redis::aio::ConnectionManager> {
    let url = support::url("REDIS_URL", "redis://127.0.0.1:6379");
    let client = match redis::Client::open(url.as_str()) {
        Ok(c) => c,
        Err(e) => return support::unavailable("Redis", e),
    };
    match tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager()).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => support::unavailable("Redis", e),
        Err(e) => support::unavailable("Redis", e),
    }
}

async fn get(store: &JobStore, path: &str) -> (StatusCode, String, Option<String>) {
    let res = JobStatusService::new(store.clone())
        .oneshot(Request::get(path).body(()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), ct)
}

async fn delete_prefix(conn: &mut redis::aio::ConnectionManager, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    for k in keys {
        let _: i64 = redis::cmd("DEL").arg(k).query_async(conn).await.unwrap();
    }
}

#[tokio::test]
async fn two_instances_share_jobs_and_the_cap() {
    let Some(mut conn) = redis().await else {
        return;
    };
    let prefix = format!("{}:", support::unique("palisade_jobs"));
    let store = || {
        JobStore::with_limits("/jobs", Duration::from_secs(1), 3, 64)
            .unwrap()
            .in_redis(conn.clone(), &prefix)
            .unwrap()
    };
    let (a, b) = (store(), store());
    let report = service_fn(|req: Request<Full<Bytes>>| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let mut res = Response::new(Full::new(body));
        *res.status_mut() = StatusCode::CREATED;
        res.headers_mut()
            .insert("content-type", "text/csv".parse().unwrap());
        Ok::<_, Infallible>(res)
    });
    let on_a = AsyncJobLayer::new(a.clone()).layer(report);
    let on_b = AsyncJobLayer::new(b.clone()).layer(report);

    let mut locations = Vec::new();
    for (svc, body) in [(&on_a, "r1"), (&on_b, "r2"), (&on_a, &"x".repeat(100)[..])] {
        let res = svc
            .clone()
            .oneshot(Request::new(Full::new(Bytes::from(body.to_owned()))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        locations.push(res.headers()["location"].to_str().unwrap().to_owned());
    }
    // The cap (3) holds across both instances.
    for svc in [&on_a, &on_b] {
        let res = svc
            .clone()
            .oneshot(Request::new(Full::default()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "1");
    }
    assert_eq!(a.len().await.unwrap(), 3);

    // Instance B serves the job A accepted, while it runs and once it is done.
    let id = locations[0].rsplit('/').next().unwrap();
    let (status, body, _) = get(&b, &locations[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("\"status\":\"pending\"") || body.contains("\"status\":\"running\""),
        "{body}"
    );
    let (status, _, _) = get(&b, &format!("{}/result", locations[0])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "not done yet");
    // Real time: the jobs run on this runtime and their TTLs are Redis's (PEXPIRE), so
    // tokio's paused clock cannot stand in. Polled, with a deadline, not a fixed sleep.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.state(id).await.unwrap() != Some(JobState::Succeeded) {
        assert!(tokio::time::Instant::now() < deadline, "job never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for l in &locations[1..] {
        let id = l.rsplit('/').next().unwrap();
        while !matches!(
            a.state(id).await.unwrap(),
            Some(JobState::Succeeded | JobState::Failed)
        ) {
            assert!(tokio::time::Instant::now() < deadline, "job never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (status, body, ct) = get(&b, &format!("{}/result", locations[0])).await;
    assert_eq!((status, body.as_str()), (StatusCode::CREATED, "r1"));
    assert_eq!(ct.as_deref(), Some("text/csv"));
    let (_, body, _) = get(&a, &format!("{}/result", locations[1])).await;
    assert_eq!(body, "r2");
    // Over max_result_bytes (64): failed, with the reason.
    let (_, body, _) = get(&a, &locations[2]).await;
    assert!(body.contains("\"status\":\"failed\""), "{body}");

    // Finished jobs expire after the TTL (1 s), which makes room again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = get(&a, &locations[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(a.len().await.unwrap(), 0);
    let res = on_b
        .clone()
        .oneshot(Request::new(Full::default()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let (status, _, _) = get(&a, "/jobs/no-such-job").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(300)).await;
    delete_prefix(&mut conn, &prefix).await;
}
