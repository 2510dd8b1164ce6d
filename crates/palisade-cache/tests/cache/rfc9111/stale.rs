//! RFC 5861 `stale-if-error`: a stale copy answers an origin failure (5xx or an error).

use crate::support::*;
use palisade_core::Elapsed;
use std::time::Duration;

fn failing_after_first(
    cc: &'static str,
    fail: fn()
        -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, palisade_core::BoxError>,
) -> Origin {
    origin(move |_, n| {
        if n == 1 {
            resp(200, &[("cache-control", cc)], "good")
        } else {
            fail()
        }
    })
}

fn five_hundred()
-> Result<http::Response<http_body_util::Full<bytes::Bytes>>, palisade_core::BoxError> {
    resp(500, &[], "boom")
}

fn timeout() -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, palisade_core::BoxError>
{
    Err(Elapsed::new(Duration::from_secs(1)).into())
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_stale_on_a_500() {
    let o = failing_after_first("max-age=10, stale-if-error=60", five_hundred);
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(30).await;
    let got = send(&mut c, get("/a")).await;
    assert_eq!(
        (
            got.status.as_u16(),
            got.body.as_ref(),
            got.x_cache(),
            got.age()
        ),
        (200, &b"good"[..], Some("stale"), Some(30))
    );
    assert_eq!(o.calls(), 2);
    // Past the window (10 + 60 s), the error passes through.
    advance(41).await;
    let got = send(&mut c, get("/a")).await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_ref()),
        (500, &b"boom"[..])
    );
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_stale_on_a_timeout_error() {
    let o = failing_after_first("max-age=10, stale-if-error=60", timeout);
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(30).await;
    let got = send(&mut c, get("/a")).await;
    assert_eq!(
        (got.body.as_ref(), got.x_cache()),
        (&b"good"[..], Some("stale"))
    );
    advance(60).await;
    let err = tower::ServiceExt::oneshot(c, get("/a")).await.unwrap_err();
    assert!(err.is::<Elapsed>());
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_from_the_request() {
    let o = failing_after_first("max-age=10", five_hundred);
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(30).await;
    assert_eq!(
        send(
            &mut c,
            req("GET", "/a", &[("cache-control", "stale-if-error=30")])
        )
        .await
        .x_cache(),
        Some("stale")
    );
    assert_eq!(
        send(
            &mut c,
            req("GET", "/a", &[("cache-control", "stale-if-error=10")])
        )
        .await
        .status,
        500
    );
}

#[tokio::test(start_paused = true)]
async fn must_revalidate_wins_over_stale_if_error() {
    let o = failing_after_first(
        "max-age=10, stale-if-error=60, must-revalidate",
        five_hundred,
    );
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(30).await;
    assert_eq!(send(&mut c, get("/a")).await.status, 500);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_serves_stale_and_refreshes_exactly_once() {
    let o = origin(|_, n| {
        resp(
            200,
            &[("cache-control", "max-age=10, stale-while-revalidate=60")],
            if n == 1 { "old" } else { "new" },
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(20).await;
    for _ in 0..3 {
        let got = send(&mut c, get("/a")).await;
        assert_eq!(
            (got.body.as_ref(), got.x_cache(), got.age()),
            (&b"old"[..], Some("stale"), Some(20))
        );
    }
    // Let the background refresh run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(o.calls(), 2, "one background refresh for three stale hits");
    let got = send(&mut c, get("/a")).await;
    assert_eq!(
        (got.body.as_ref(), got.x_cache()),
        (&b"new"[..], Some("hit"))
    );
    // Past the window: validated in the foreground.
    advance(100).await;
    let got = send(&mut c, get("/a")).await;
    assert_eq!(got.x_cache(), Some("miss"));
    assert_eq!(o.calls(), 3);
}
