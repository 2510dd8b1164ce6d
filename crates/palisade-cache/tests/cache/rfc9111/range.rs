//! RFC 9110 §14: `Range` requests answered with 206 from a stored complete response.

use crate::support::*;

fn site() -> Origin {
    origin(|_, _| {
        resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("content-length", "10"),
            ],
            "0123456789",
        )
    })
}

#[tokio::test(start_paused = true)]
async fn single_ranges_become_206_from_storage() {
    let o = site();
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    for (range, body, content_range) in [
        ("bytes=2-4", "234", "bytes 2-4/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-2", "89", "bytes 8-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
    ] {
        let got = send(&mut c, req("GET", "/a", &[("range", range)])).await;
        assert_eq!(got.status, 206, "{range}");
        assert_eq!(got.body, body, "{range}");
        assert_eq!(got.header("content-range"), Some(content_range));
        assert_eq!(
            got.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
    assert_eq!(o.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn unsatisfiable_multiple_and_if_range_mismatch() {
    let o = site();
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    let got = send(&mut c, req("GET", "/a", &[("range", "bytes=20-30")])).await;
    assert_eq!(
        (got.status.as_u16(), got.header("content-range")),
        (416, Some("bytes */10"))
    );
    // Several ranges, another unit, a malformed range: the full 200.
    for range in ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-"] {
        let got = send(&mut c, req("GET", "/a", &[("range", range)])).await;
        assert_eq!((got.status.as_u16(), got.body.len()), (200, 10), "{range}");
    }
    let got = send(
        &mut c,
        req(
            "GET",
            "/a",
            &[("range", "bytes=0-1"), ("if-range", "\"v0\"")],
        ),
    )
    .await;
    assert_eq!(got.status, 200);
    let got = send(
        &mut c,
        req(
            "GET",
            "/a",
            &[("range", "bytes=0-1"), ("if-range", "\"v1\"")],
        ),
    )
    .await;
    assert_eq!((got.status.as_u16(), got.body.as_ref()), (206, &b"01"[..]));
    assert_eq!(o.calls(), 1);
}
