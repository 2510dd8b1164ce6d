//! `poll_ready` drives every arm (like tower's `Steer`).

use http::{Request, Response};
use palisade_traffic::Split;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::Service;
use tower_test::mock;

#[tokio::test]
async fn ready_only_when_every_arm_is_ready() {
    let (a, mut ha) = mock::pair::<Request<()>, Response<()>>();
    let (b, mut hb) = mock::pair::<Request<()>, Response<()>>();
    let (mut split, _) = Split::builder()
        .arm("a", a)
        .arm("b", b)
        .weights([0, 1])
        .build()
        .unwrap();
    ha.allow(1);
    hb.allow(0);
    let mut t = task::spawn(());
    assert_pending!(t.enter(|cx, _| split.poll_ready(cx)));
    hb.allow(1);
    assert!(t.is_woken());
    assert_ready_ok!(t.enter(|cx, _| split.poll_ready(cx)));
    let fut = split.call(Request::get("/x").body(()).unwrap());
    let (req, send) = hb.next_request().await.unwrap();
    assert_eq!(req.uri(), "/x");
    send.send_response(Response::new(()));
    fut.await.unwrap();
    // Arm "a" was readied but never called.
    assert!(ha.poll_request().is_pending());
}
