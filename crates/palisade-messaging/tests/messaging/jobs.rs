//! AsyncJobLayer and JobStatusService on paused time.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_messaging::jobs::{AsyncJobLayer, JobState, JobStatusService, JobStore};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::{Layer, ServiceExt, service_fn};

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

fn slow(
    d: Duration,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: Request<Full<Bytes>>| async move {
        tokio::time::sleep(d).await;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let mut res = Response::new(Full::new(Bytes::from(format!(
            "echo:{}",
            String::from_utf8_lossy(&body)
        ))));
        *res.status_mut() = StatusCode::CREATED;
        res.headers_mut()
            .insert("content-type", "text/plain".parse().unwrap());
        Ok(res)
    })
}

async fn submit<S>(svc: &S, body: &str) -> Response<Full<Bytes>>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone,
{
    svc.clone()
        .oneshot(
            Request::post("/report")
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn accepted_then_status_then_result() {
    let store = JobStore::new();
    let svc = AsyncJobLayer::new(store.clone()).layer(slow(Duration::from_secs(10)));
    let res = submit(&svc, "q1").await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/jobs/"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"status\":\"pending\""));

    tokio::time::sleep(Duration::from_millis(1)).await;
    let (status, body, _) = get(&store, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"status\":\"running\""), "{body}");
    let (status, _, _) = get(&store, &format!("{location}/result")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "not done yet");

    tokio::time::sleep(Duration::from_secs(10)).await;
    let (status, body, _) = get(&store, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"status\":\"succeeded\""), "{body}");
    assert!(
        body.contains(&format!("\"result\":\"{location}/result\"")),
        "{body}"
    );
    let (status, body, ct) = get(&store, &format!("{location}/result")).await;
    assert_eq!(status, StatusCode::CREATED, "the inner response's status");
    assert_eq!(body, "echo:q1");
    assert_eq!(ct.as_deref(), Some("text/plain"));

    // Unknown ids, bad paths and methods.
    assert_eq!(get(&store, "/jobs/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&store, "/jobs/").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&store, "/other/x").await.0, StatusCode::NOT_FOUND);
    let res = JobStatusService::new(store.clone())
        .oneshot(
            Request::builder()
                .method(Method::DELETE)
                .uri(&location)
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
}

#[tokio::test(start_paused = true)]
async fn results_expire_after_the_ttl_and_the_cap_refuses_with_503() {
    let store = JobStore::with_limits("/jobs", Duration::from_secs(60), 2, 1024).unwrap();
    let svc = AsyncJobLayer::new(store.clone()).layer(slow(Duration::from_secs(1)));
    let a = submit(&svc, "a").await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let _b = submit(&svc, "b").await;
    let refused = submit(&svc, "c").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(&store, &format!("{a}/result")).await.1, "echo:a");
    assert_eq!(
        submit(&svc, "c").await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "kept until TTL"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(get(&store, &a).await.0, StatusCode::NOT_FOUND, "expired");
    assert_eq!(submit(&svc, "c").await.status(), StatusCode::ACCEPTED);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_failures_are_reported() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            match req.uri().path() {
                "/fail" => Err(std::io::Error::other("report backend down")),
                "/panic" => panic!("bug"),
                "/big" => Ok(Response::new(Full::new(Bytes::from(vec![b'x'; 2048])))),
                _ => Ok(Response::new(Full::new(Bytes::new()))),
            }
        }
    });
    let store = JobStore::with_limits("/jobs", Duration::from_secs(60), 100, 1024).unwrap();
    let svc = AsyncJobLayer::new(store.clone())
        .max_concurrency(2)
        .layer(inner);
    let mut ids = Vec::new();
    for path in ["/ok", "/ok", "/ok", "/fail", "/panic", "/big"] {
        let res = svc
            .clone()
            .oneshot(Request::post(path).body(Full::<Bytes>::default()).unwrap())
            .await
            .unwrap();
        ids.push(res.headers()["location"].to_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut states = Vec::new();
    for l in &ids {
        states.push(store.state(l.rsplit('/').next().unwrap()).await.unwrap());
    }
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == Some(JobState::Running))
            .count(),
        2
    );
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == Some(JobState::Pending))
            .count(),
        4
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    let (_, body, _) = get(&store, &ids[3]).await;
    assert!(
        body.contains("\"status\":\"failed\"") && body.contains("report backend down"),
        "{body}"
    );
    let (_, body, _) = get(&store, &ids[4]).await;
    assert!(
        body.contains("\"status\":\"failed\"") && body.contains("interrupted"),
        "{body}"
    );
    let (_, body, _) = get(&store, &ids[5]).await;
    assert!(
        body.contains("\"status\":\"failed\""),
        "over max_result_bytes: {body}"
    );
    let (status, body, _) = get(&store, &format!("{}/result", ids[3])).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a failed job's result is its status document"
    );
    assert!(body.contains("failed"));
    assert_eq!(
        store
            .state(ids[0].rsplit('/').next().unwrap())
            .await
            .unwrap(),
        Some(JobState::Succeeded)
    );
}
