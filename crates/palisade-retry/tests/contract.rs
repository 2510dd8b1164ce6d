//! Tower contract: each retry polls a clone of the inner service for readiness before
//! calling it (tower-test's mock panics when called without `poll_ready`), and waits while
//! that clone is not ready.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use palisade_retry::{Backoff, ReplayBody, RetryLayer};
use tokio_test::{assert_pending, assert_ready_ok};
use tower_test::mock;

#[tokio::test(start_paused = true)]
async fn retry_waits_for_a_ready_clone() {
    let layer = RetryLayer::new()
        .no_budget()
        .backoff(Backoff::constant(Duration::from_millis(10)));
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<ReplayBody<Empty<Bytes>>>, Response<()>, _>(layer);
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(Request::get("/x").body(Empty::new()).unwrap()));
    assert_pending!(fut.poll());
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.uri(), "/x");
    assert!(req.body().is_buffered());
    send.send_response(Response::builder().status(503).body(()).unwrap());

    assert_pending!(fut.poll()); // backing off
    tokio::time::advance(Duration::from_millis(10)).await;
    assert_pending!(fut.poll()); // the clone is not ready: no call yet
    assert!(!fut.is_woken());
    handle.allow(1);
    assert!(fut.is_woken());
    assert_pending!(fut.poll()); // second attempt in flight
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.method(), "GET");
    send.send_response(Response::new(()));
    let res = assert_ready_ok!(fut.poll());
    assert_eq!(res.status(), 200);
}

/// A body that never yields.
#[derive(Debug)]
struct Stalled;
impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn unretryable_request_is_not_buffered() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<ReplayBody<Stalled>>, Response<()>, _>(RetryLayer::new());
    assert_ready_ok!(svc.poll_ready());
    // POST: passed through at once, body untouched (still streaming).
    let mut fut = tokio_test::task::spawn(svc.call(Request::post("/pay").body(Stalled).unwrap()));
    assert_pending!(fut.poll());
    let (req, send) = handle.next_request().await.unwrap();
    assert!(!req.body().is_buffered());
    send.send_response(Response::builder().status(503).body(()).unwrap());
    assert_eq!(assert_ready_ok!(fut.poll()).status(), 503);

    // PUT: buffered first, so the inner service is not called while the body stalls.
    assert_ready_ok!(svc.poll_ready());
    let mut fut = tokio_test::task::spawn(svc.call(Request::put("/doc").body(Stalled).unwrap()));
    assert_pending!(fut.poll());
    assert!(handle.poll_request().is_pending());
}
