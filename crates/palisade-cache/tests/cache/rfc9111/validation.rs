//! §4.3 validation: conditional requests, 304 merged into the stored response (§3.2),
//! `no-cache` responses validated on every use, the client's own conditional requests.

use crate::support::*;

/// An origin with ETag "v1": 304 to a matching If-None-Match (with the headers of `on_304`),
/// else 200 with `cc`.
fn etag_origin(cc: &'static str, on_304: &'static [(&'static str, &'static str)]) -> Origin {
    origin(move |r, _| {
        if r.headers()
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            resp(304, on_304, "")
        } else {
            resp(
                200,
                &[
                    ("cache-control", cc),
                    ("etag", "\"v1\""),
                    ("x-version", "1"),
                    ("content-type", "text/plain"),
                ],
                "body",
            )
        }
    })
}

#[tokio::test(start_paused = true)]
async fn stale_response_is_validated_and_304_merges_headers() {
    let o = etag_origin(
        "max-age=10",
        &[
            ("cache-control", "max-age=100"),
            ("x-version", "2"),
            ("content-length", "0"),
        ],
    );
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(20).await;
    let got = send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 2);
    assert_eq!(request_headers(&o, 2)["if-none-match"], "\"v1\"");
    assert_eq!(
        (got.status.as_u16(), got.x_cache(), got.body.as_ref()),
        (200, Some("revalidated"), &b"body"[..])
    );
    assert_eq!(
        got.header("x-version"),
        Some("2"),
        "304 header replaces the stored one"
    );
    assert_eq!(
        got.header("content-type"),
        Some("text/plain"),
        "headers absent from the 304 are kept"
    );
    assert_eq!(
        got.header("content-length"),
        None,
        "Content-Length of the 304 is not merged"
    );
    assert_eq!(got.age(), Some(0));
    // The merged freshness (max-age=100) now applies.
    advance(90).await;
    let hit = send(&mut c, get("/a")).await;
    assert_eq!(
        (hit.x_cache(), hit.header("x-version")),
        (Some("hit"), Some("2"))
    );
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn no_cache_response_is_validated_every_time() {
    let o = etag_origin("no-cache", &[]);
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    for n in 2..=4 {
        let got = send(&mut c, get("/a")).await;
        assert_eq!(
            (got.x_cache(), got.body.as_ref()),
            (Some("revalidated"), &b"body"[..])
        );
        assert_eq!(o.calls(), n);
        assert_eq!(request_headers(&o, n)["if-none-match"], "\"v1\"");
    }
}

#[tokio::test(start_paused = true)]
async fn last_modified_is_sent_as_if_modified_since() {
    let lm = date(-3600);
    let lm2 = lm.clone();
    let o = origin(move |r, _| {
        if r.headers()
            .get("if-modified-since")
            .is_some_and(|v| v == lm.as_str())
        {
            resp(304, &[], "")
        } else {
            resp(
                200,
                &[("cache-control", "max-age=1"), ("last-modified", &lm)],
                "body",
            )
        }
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(5).await;
    let got = send(&mut c, get("/a")).await;
    assert_eq!(
        (got.x_cache(), got.body.as_ref()),
        (Some("revalidated"), &b"body"[..])
    );
    assert_eq!(request_headers(&o, 2)["if-modified-since"], lm2.as_str());
}

#[tokio::test(start_paused = true)]
async fn client_conditional_request_is_answered_from_the_cache() {
    let o = etag_origin("max-age=60", &[]);
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    let got = send(
        &mut c,
        req("GET", "/a", &[("if-none-match", "\"v0\", W/\"v1\"")]),
    )
    .await;
    assert_eq!((got.status.as_u16(), got.body.len()), (304, 0));
    assert_eq!(got.header("etag"), Some("\"v1\""));
    assert_eq!(
        got.header("x-version"),
        None,
        "a 304 carries no content metadata"
    );
    assert!(got.age().is_some());
    let other = send(&mut c, req("GET", "/a", &[("if-none-match", "\"v9\"")])).await;
    assert_eq!(
        (other.status.as_u16(), other.body.as_ref()),
        (200, &b"body"[..])
    );
    // If-Modified-Since against the stored Last-Modified (here: the Date the cache added).
    let ims = send(
        &mut c,
        req("GET", "/a", &[("if-modified-since", &date(10))]),
    )
    .await;
    assert_eq!(ims.status, 304);
    assert_eq!(o.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn client_validators_are_replaced_by_the_caches_own_when_validating() {
    let o = etag_origin("max-age=1", &[]);
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(5).await;
    // The client's own tag does not match ours; the cache validates with "v1" and answers
    // the client with the full response.
    let got = send(&mut c, req("GET", "/a", &[("if-none-match", "\"v0\"")])).await;
    assert_eq!(request_headers(&o, 2)["if-none-match"], "\"v1\"");
    assert_eq!(
        (got.status.as_u16(), got.body.as_ref()),
        (200, &b"body"[..])
    );
    // A client whose tag matches gets a 304 after the cache's own validation.
    advance(5).await;
    let got = send(&mut c, req("GET", "/a", &[("if-none-match", "\"v1\"")])).await;
    assert_eq!(got.status, 304);
    assert_eq!(o.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn request_no_cache_forces_validation() {
    let o = etag_origin("max-age=60", &[]);
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    let got = send(&mut c, req("GET", "/a", &[("cache-control", "no-cache")])).await;
    assert_eq!(got.x_cache(), Some("revalidated"));
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_new_200_during_validation_replaces_the_stored_response() {
    let o = origin(|_, n| {
        let tag = format!("\"v{n}\"");
        resp(
            200,
            &[("cache-control", "max-age=1"), ("etag", &tag)],
            if n == 1 { "old" } else { "new" },
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(2).await;
    assert_eq!(send(&mut c, get("/a")).await.body, "new");
    assert_eq!(send(&mut c, get("/a")).await.body, "new");
    assert_eq!(o.calls(), 2);
}
