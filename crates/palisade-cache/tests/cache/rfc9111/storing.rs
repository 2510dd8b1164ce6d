//! §3 storing responses: `no-store`, `private`, `Authorization`, statuses, methods, body
//! size; §5.2.1.7 `only-if-cached`; RFC 9213 targeted fields.

use crate::support::*;
use tower::Layer;

async fn calls_for_two_gets(
    headers: &'static [(&'static str, &'static str)],
    request: &'static [(&'static str, &'static str)],
    status: u16,
) -> usize {
    let o = origin(move |_, _| resp(status, headers, "x"));
    let mut c = cache(&o);
    send(&mut c, req("GET", "/a", request)).await;
    send(&mut c, req("GET", "/a", request)).await;
    o.calls()
}

#[tokio::test(start_paused = true)]
async fn stores_explicitly_fresh_responses() {
    assert_eq!(
        calls_for_two_gets(&[("cache-control", "max-age=60")], &[], 200).await,
        1
    );
    assert_eq!(
        calls_for_two_gets(&[("cache-control", "max-age=60")], &[], 404).await,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn no_store_in_response_or_request_is_not_stored() {
    assert_eq!(
        calls_for_two_gets(&[("cache-control", "max-age=60, no-store")], &[], 200).await,
        2
    );
    assert_eq!(
        calls_for_two_gets(
            &[("cache-control", "max-age=60")],
            &[("cache-control", "no-store")],
            200
        )
        .await,
        2
    );
}

#[tokio::test(start_paused = true)]
async fn private_is_not_stored_by_a_shared_cache() {
    assert_eq!(
        calls_for_two_gets(&[("cache-control", "max-age=60, private")], &[], 200).await,
        2
    );
    assert_eq!(
        calls_for_two_gets(
            &[("cache-control", "max-age=60, private=\"set-cookie\"")],
            &[],
            200
        )
        .await,
        2
    );
}

#[tokio::test(start_paused = true)]
async fn authorization_needs_public_s_maxage_or_must_revalidate() {
    let auth: &[(&str, &str)] = &[("authorization", "Bearer t")];
    assert_eq!(
        calls_for_two_gets(&[("cache-control", "max-age=60")], auth, 200).await,
        2
    );
    assert_eq!(
        calls_for_two_gets(&[("cache-control", "max-age=60, public")], auth, 200).await,
        1
    );
    assert_eq!(
        calls_for_two_gets(&[("cache-control", "s-maxage=60")], auth, 200).await,
        1
    );
    assert_eq!(
        calls_for_two_gets(
            &[("cache-control", "max-age=60, must-revalidate")],
            auth,
            200
        )
        .await,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn partial_and_unknown_freshness_statuses_are_not_stored() {
    // 302 is not heuristically cacheable and has no explicit freshness.
    assert_eq!(calls_for_two_gets(&[("location", "/b")], &[], 302).await, 2);
    assert_eq!(
        calls_for_two_gets(
            &[
                ("cache-control", "max-age=60"),
                ("content-range", "bytes 0-0/10")
            ],
            &[],
            206
        )
        .await,
        2
    );
    // With explicit freshness, a 302 may be stored.
    assert_eq!(
        calls_for_two_gets(
            &[("cache-control", "max-age=60"), ("location", "/b")],
            &[],
            302
        )
        .await,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn only_get_responses_are_stored_and_head_is_answered_from_get() {
    let o = origin(|_, _| {
        resp(
            200,
            &[("cache-control", "max-age=60"), ("content-length", "5")],
            "hello",
        )
    });
    let mut c = cache(&o);
    send(&mut c, req("HEAD", "/a", &[])).await;
    send(&mut c, req("HEAD", "/a", &[])).await;
    assert_eq!(o.calls(), 2, "HEAD responses are not stored");
    send(&mut c, get("/a")).await;
    let head = send(&mut c, req("HEAD", "/a", &[])).await;
    assert_eq!(o.calls(), 3);
    assert_eq!(
        (
            head.x_cache(),
            head.body.len(),
            head.header("content-length")
        ),
        (Some("hit"), 0, Some("5"))
    );
}

#[tokio::test(start_paused = true)]
async fn only_if_cached_answers_504_without_a_stored_response() {
    let o = origin(|_, _| resp(200, &[("cache-control", "max-age=60")], "x"));
    let mut c = cache(&o);
    let oic = [("cache-control", "only-if-cached")];
    assert_eq!(send(&mut c, req("GET", "/a", &oic)).await.status, 504);
    assert_eq!(o.calls(), 0);
    send(&mut c, get("/a")).await;
    let hit = send(&mut c, req("GET", "/a", &oic)).await;
    assert_eq!((hit.status.as_u16(), hit.x_cache()), (200, Some("hit")));
    advance(61).await;
    assert_eq!(
        send(&mut c, req("GET", "/a", &oic)).await.status,
        504,
        "stale: not usable without validation"
    );
    assert_eq!(o.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn bodies_over_the_limit_stream_through_uncached() {
    let o = origin(|_, _| resp(200, &[("cache-control", "max-age=60")], "0123456789"));
    let mut c = layer().max_body_bytes(4).layer(o.clone());
    for _ in 0..2 {
        let got = send(&mut c, get("/a")).await;
        assert_eq!(got.body, "0123456789");
    }
    assert_eq!(o.calls(), 2);
    // With the length declared, the body is not even read before answering.
    let o = origin(|_, _| {
        resp(
            200,
            &[("cache-control", "max-age=60"), ("content-length", "10")],
            "0123456789",
        )
    });
    let mut c = layer().max_body_bytes(4).layer(o.clone());
    assert_eq!(send(&mut c, get("/a")).await.body, "0123456789");
    send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn targeted_cdn_cache_control_takes_precedence() {
    assert_eq!(
        calls_for_two_gets(
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60")
            ],
            &[],
            200
        )
        .await,
        1
    );
    assert_eq!(
        calls_for_two_gets(
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store")
            ],
            &[],
            200
        )
        .await,
        2
    );
    // Turned off, Cache-Control rules.
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store"),
            ],
            "x",
        )
    });
    let mut c = layer().targeted_field(None).layer(o.clone());
    send(&mut c, get("/a")).await;
    send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn key_headers_separate_tenants() {
    let o = origin(|r, _| {
        let t = r.headers()["x-tenant"].to_str().unwrap().to_owned();
        resp(200, &[("cache-control", "max-age=60"), ("x-echo", &t)], "x")
    });
    let mut c = layer()
        .key_header(http::HeaderName::from_static("x-tenant"))
        .layer(o.clone());
    send(&mut c, req("GET", "/a", &[("x-tenant", "a")])).await;
    let b = send(&mut c, req("GET", "/a", &[("x-tenant", "b")])).await;
    assert_eq!(b.header("x-echo"), Some("b"));
    let a = send(&mut c, req("GET", "/a", &[("x-tenant", "a")])).await;
    assert_eq!((a.header("x-echo"), a.x_cache()), (Some("a"), Some("hit")));
    assert_eq!(o.calls(), 2);
}
