//! Shadow traffic never changes or delays the primary response.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_test::EventRecorder;
use palisade_traffic::{ShadowLayer, TrafficEvent};
use tower::{Layer, ServiceExt, service_fn};

type Seen = Arc<Mutex<Vec<String>>>;

/// Echoes the request body with `status` after `delay`, recording what it saw.
fn echo<B>(
    status: u16,
    delay: Duration,
    seen: Seen,
) -> impl tower::Service<Request<B>, Response = Response<Bytes>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    service_fn(move |req: Request<B>| {
        let seen = Arc::clone(&seen);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            Ok::<_, Infallible>(Response::builder().status(status).body(body).unwrap())
        }
    })
}

fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/orders")
        .header("x-id", "1")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn mirror_gets_a_copy_but_never_the_answer_or_the_wait() {
    let (primary_seen, mirror_seen): (Seen, Seen) = (Arc::default(), Arc::default());
    let evs = EventRecorder::new();
    let layer = ShadowLayer::new(echo(500, Duration::from_secs(10), Arc::clone(&mirror_seen)))
        .on_event(evs.on());
    let svc = layer.layer(echo(200, Duration::ZERO, Arc::clone(&primary_seen)));
    let start = tokio::time::Instant::now();
    let res = svc.clone().oneshot(post("hello")).await.unwrap();
    // Primary answer, primary status, no waiting on the 10 s mirror.
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body(), "hello");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(*primary_seen.lock().unwrap(), ["hello"]);
    assert!(mirror_seen.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(*mirror_seen.lock().unwrap(), ["hello"]);
    assert_eq!(
        evs.events::<TrafficEvent>(),
        [TrafficEvent::ShadowCompared {
            instance: "shadow".into(),
            primary: Some(StatusCode::OK),
            shadow: Some(StatusCode::INTERNAL_SERVER_ERROR),
            matched: false
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_and_body_limit_skip_mirroring() {
    let (primary_seen, mirror_seen): (Seen, Seen) = (Arc::default(), Arc::default());
    let evs = EventRecorder::new();
    let layer = ShadowLayer::new(echo(200, Duration::from_secs(10), Arc::clone(&mirror_seen)))
        .max_concurrency(1)
        .max_body(8)
        .on_event(evs.on());
    let svc = layer.layer(echo(201, Duration::ZERO, Arc::clone(&primary_seen)));
    for body in ["one", "two", "far too long body"] {
        let res = svc.clone().oneshot(post(body)).await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.into_body(), body);
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        *primary_seen.lock().unwrap(),
        ["one", "two", "far too long body"]
    );
    assert_eq!(*mirror_seen.lock().unwrap(), ["one"]);
    let names: Vec<_> = evs
        .events::<TrafficEvent>()
        .iter()
        .map(palisade_core::Event::name)
        .collect();
    assert_eq!(
        names,
        ["shadow_skipped", "shadow_skipped", "shadow_compared"]
    );
    // The permit was released: mirroring resumes.
    svc.clone().oneshot(post("four")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(*mirror_seen.lock().unwrap(), ["one", "four"]);
}

#[tokio::test(start_paused = true)]
async fn hung_mirror_times_out_and_frees_its_permit() {
    let mirror_seen: Seen = Arc::default();
    let evs = EventRecorder::new();
    let layer = ShadowLayer::new(echo(
        200,
        Duration::from_secs(3600),
        Arc::clone(&mirror_seen),
    ))
    .max_concurrency(1)
    .timeout(Duration::from_secs(1))
    .on_event(evs.on());
    let svc = layer.layer(echo(200, Duration::ZERO, Arc::default()));
    svc.clone().oneshot(post("a")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        evs.events::<TrafficEvent>(),
        [TrafficEvent::ShadowCompared {
            instance: "shadow".into(),
            primary: Some(StatusCode::OK),
            shadow: None,
            matched: false
        }]
    );
    svc.clone().oneshot(post("b")).await.unwrap();
    assert_eq!(
        evs.events::<TrafficEvent>().len(),
        1,
        "second request was mirrored, not skipped"
    );
}
