//! Behaviour of the timeout layer under paused time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_core::{BoxError, Deadline, Elapsed, HandleRejectionsLayer};
use palisade_timeout::{DeadlineSource, TimeoutEvent, TimeoutLayer};
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use tower_test::mock;

type Req = Request<&'static str>;

fn req(body: &'static str) -> Req {
    Request::new(body)
}

#[tokio::test(start_paused = true)]
async fn fires_exactly_at_the_deadline_and_not_before() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Req, &'static str, _>(TimeoutLayer::new(Duration::from_secs(1)));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(req("a")));
    let (_r, _send) = handle.next_request().await.unwrap();

    advance(Duration::from_millis(999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    let err = fut.await.unwrap_err();
    let elapsed = err.downcast_ref::<Elapsed>().expect("Elapsed");
    assert_eq!(elapsed.timeout, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn success_passes_untouched() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Req, &'static str, _>(TimeoutLayer::new(Duration::from_secs(1)));
    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(req("hello"));
    let (got, send) = handle.next_request().await.unwrap();
    assert_eq!(*got.body(), "hello");
    advance(Duration::from_millis(999)).await;
    send.send_response("world");
    assert_eq!(fut.await.unwrap(), "world");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_boxed() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Req, &'static str, _>(TimeoutLayer::new(Duration::from_secs(1)));
    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(req("x"));
    let (_r, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("boom"));
    let err = fut.await.unwrap_err();
    assert!(!err.is::<Elapsed>());
    assert_eq!(err.to_string(), "boom");
}

#[tokio::test(start_paused = true)]
async fn shorter_incoming_grpc_timeout_wins_and_longer_is_ignored() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let layer = TimeoutLayer::new(Duration::from_secs(2))
        .on_event(move |e: &TimeoutEvent| sink.lock().unwrap().push(e.clone()));
    let (mut svc, mut handle) = mock::spawn_layer::<Req, &'static str, _>(layer);

    // 100m < 2 s: fires after 100 ms.
    assert_ready_ok!(svc.poll_ready());
    let r = Request::builder()
        .header("grpc-timeout", "100m")
        .body("a")
        .unwrap();
    let mut fut = task::spawn(svc.call(r));
    let (_r, _send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(99)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    assert!(fut.await.unwrap_err().is::<Elapsed>());
    assert_eq!(
        events.lock().unwrap().last(),
        Some(&TimeoutEvent::Elapsed {
            instance: "timeout".into(),
            timeout: Duration::from_millis(100),
            source: DeadlineSource::GrpcTimeout
        })
    );

    // 5S > 2 s: the configured 2 s applies.
    assert_ready_ok!(svc.poll_ready());
    let r = Request::builder()
        .header("grpc-timeout", "5S")
        .body("b")
        .unwrap();
    let mut fut = task::spawn(svc.call(r));
    let (_r, _send) = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(1)).await;
    assert!(fut.await.unwrap_err().is::<Elapsed>());
}

#[tokio::test(start_paused = true)]
async fn malformed_grpc_timeouts_are_ignored_with_an_event() {
    for bad in [
        "123456789n",
        "1s",
        "",
        "-1S",
        "99999999999999999999H",
        "1 S",
    ] {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let layer = TimeoutLayer::new(Duration::from_secs(1))
            .on_event(move |e: &TimeoutEvent| sink.lock().unwrap().push(e.clone()));
        let svc = layer.layer(service_fn(|_r: Req| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, BoxError>("ok")
        }));
        let r = Request::builder()
            .header("grpc-timeout", bad)
            .body("a")
            .unwrap();
        // The configured 1 s applies: a 500 ms handler succeeds.
        assert_eq!(svc.oneshot(r).await.unwrap(), "ok", "{bad:?}");
        assert_eq!(
            *events.lock().unwrap(),
            vec![TimeoutEvent::InvalidDeadlineHeader {
                instance: "timeout".into(),
                header: http::HeaderName::from_static("grpc-timeout")
            }],
            "{bad:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn milliseconds_header_and_outer_deadline() {
    let layer = TimeoutLayer::new(Duration::from_secs(2))
        .deadline_header(http::HeaderName::from_static("x-budget-ms"));
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let svc = layer.layer(service_fn(move |r: Req| {
        *seen2.lock().unwrap() = Deadline::from_request(&r);
        async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, BoxError>("late")
        }
    }));

    let start = Instant::now();
    let r = Request::builder()
        .header("x-budget-ms", "300")
        .body("a")
        .unwrap();
    assert!(svc.clone().oneshot(r).await.unwrap_err().is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    // The inner service saw the effective deadline in its extensions.
    assert_eq!(
        seen.lock().unwrap().unwrap().instant(),
        start + Duration::from_millis(300)
    );

    // An outer deadline 50 ms away beats everything.
    let start = Instant::now();
    let mut r = req("b");
    r.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(50)));
    assert!(svc.oneshot(r).await.unwrap_err().is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn expired_deadline_does_not_call_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(move |_r: Req| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>("ok") }
    }));
    // SPECS §3.1 [ours]: grpc-timeout 0 means already expired.
    let r = Request::builder()
        .header("grpc-timeout", "0n")
        .body("a")
        .unwrap();
    assert!(svc.clone().oneshot(r).await.unwrap_err().is::<Elapsed>());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(svc.oneshot(req("b")).await.unwrap(), "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn outbound_mode_writes_the_remaining_budget() {
    let written = Arc::new(Mutex::new(Vec::new()));
    let w = written.clone();
    let svc = TimeoutLayer::new(Duration::from_secs(5))
        .outbound(true)
        .deadline_header(http::HeaderName::from_static("x-budget-ms"))
        .layer(service_fn(move |r: Req| {
            w.lock().unwrap().push((
                r.headers()["grpc-timeout"].clone(),
                r.headers()["x-budget-ms"].clone(),
            ));
            async { Ok::<_, BoxError>("ok") }
        }));
    let mut r = Request::builder()
        .header("grpc-timeout", "1S")
        .body("a")
        .unwrap();
    // An outer layer started 300 ms ago with a 1 s budget: 700 ms remain (SPECS §3 propagate).
    r.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(700)));
    svc.oneshot(r).await.unwrap();
    let got = written.lock().unwrap();
    assert_eq!(got[0].0, "700000u");
    assert_eq!(got[0].1, "700");
}

#[tokio::test(start_paused = true)]
async fn renders_504_problem_json_through_handle_rejections() {
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(TimeoutLayer::new(Duration::from_millis(250)))
        .service(service_fn(|_r: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(b"late"))))
        }));
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(res.headers().get("retry-after").is_none());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({
            "type": "about:blank",
            "title": "Gateway Timeout",
            "status": 504,
            "detail": "request timed out after 250ms",
        })
    );

    // gRPC callers get a trailers-only DEADLINE_EXCEEDED.
    let r = Request::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let res = svc.oneshot(r).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "4");
}

#[tokio::test(start_paused = true)]
async fn clones_share_config_and_listeners() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let svc = TimeoutLayer::new(Duration::from_millis(10))
        .on_event(move |_e: &TimeoutEvent| {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .layer(service_fn(|_r: Req| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, BoxError>("late")
        }));
    let a = svc.clone();
    let b = svc.clone();
    let (ra, rb) = tokio::join!(a.oneshot(req("a")), b.oneshot(req("b")));
    assert!(ra.unwrap_err().is::<Elapsed>());
    assert!(rb.unwrap_err().is::<Elapsed>());
    assert_eq!(fired.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_errors_are_boxed() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Req, &'static str, _>(TimeoutLayer::new(Duration::from_secs(1)));
    handle.send_error(std::io::Error::other("not ready"));
    let err = tokio_test::assert_ready_err!(svc.poll_ready());
    assert_eq!(err.to_string(), "not ready");
}

/// The timer is armed only when the inner future first returns `Pending`: a call that is
/// ready at once never touches the timer wheel. A runtime without timers shows it (creating
/// a `Sleep` there panics).
#[test]
fn a_call_ready_at_once_never_arms_the_timer() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let res = rt.block_on(async {
        let svc =
            TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|r: Req| async move {
                Ok::<_, BoxError>(r.into_body())
            }));
        svc.oneshot(req("ready")).await
    });
    assert_eq!(res.unwrap(), "ready");
}

#[tokio::test(start_paused = true)]
async fn deadline_headers_on_several_lines_are_ignored() {
    // A client sends a tiny grpc-timeout on one line and a large one on another (or a
    // proxy appended its own): neither is trusted, the configured 1 s applies.
    let name = http::HeaderName::from_static("x-deadline-ms");
    for (header, lines) in [
        ("grpc-timeout", ["1m", "10S"]),
        ("grpc-timeout", ["10S", "1m"]),
        ("x-deadline-ms", ["1", "10000"]),
    ] {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let layer = TimeoutLayer::new(Duration::from_secs(1))
            .deadline_header(name.clone())
            .on_event(move |e: &TimeoutEvent| sink.lock().unwrap().push(e.clone()));
        let svc = layer.layer(service_fn(|_r: Req| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, BoxError>("ok")
        }));
        let r = Request::builder()
            .header(header, lines[0])
            .header(header, lines[1])
            .body("a")
            .unwrap();
        let start = Instant::now();
        assert_eq!(svc.oneshot(r).await.unwrap(), "ok", "{header} {lines:?}");
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        assert_eq!(
            *events.lock().unwrap(),
            vec![TimeoutEvent::InvalidDeadlineHeader {
                instance: "timeout".into(),
                header: http::HeaderName::from_static(header)
            }],
            "{header} {lines:?}"
        );
    }
    // ...and a 2 s handler still times out at the configured 1 s, not at 10 s.
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|_r: Req| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok::<_, BoxError>("ok")
    }));
    let r = Request::builder()
        .header("grpc-timeout", "10S")
        .header("grpc-timeout", "20S")
        .body("a")
        .unwrap();
    let start = Instant::now();
    assert!(svc.oneshot(r).await.unwrap_err().is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}
