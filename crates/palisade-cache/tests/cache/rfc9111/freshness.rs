//! §4.2 freshness: lifetime from `s-maxage`/`max-age`/`Expires`/`Date`, `Age` arithmetic,
//! request directives (§5.2.1), heuristic freshness (§4.2.2) off by default.

use crate::support::*;
use palisade_cache::Heuristic;
use std::time::Duration;
use tower::Layer;

#[tokio::test(start_paused = true)]
async fn fresh_hit_carries_age_and_keeps_date() {
    let o = origin(|_, n| {
        resp(
            200,
            &[("cache-control", "max-age=60"), ("date", &date(0))],
            if n == 1 { "one" } else { "two" },
        )
    });
    let mut c = cache(&o);
    let first = send(&mut c, get("/a")).await;
    assert_eq!(
        (first.status.as_u16(), first.x_cache(), first.age()),
        (200, Some("miss"), None)
    );
    advance(10).await;
    let hit = send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 1);
    assert_eq!(hit.body, "one");
    assert_eq!(hit.x_cache(), Some("hit"));
    assert_eq!(hit.age(), Some(10));
    assert_eq!(
        hit.header("date"),
        Some(date(0).as_str()),
        "Date is not rewritten"
    );
}

#[tokio::test(start_paused = true)]
async fn upstream_age_counts_toward_current_age() {
    // Age 30 + 29 s in cache = 59 < 60: fresh; one second later 60: stale.
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("age", "30"),
                ("date", &date(0)),
            ],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(29).await;
    let hit = send(&mut c, get("/a")).await;
    assert_eq!((hit.x_cache(), hit.age()), (Some("hit"), Some(59)));
    advance(1).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("miss"));
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn apparent_age_from_date_counts() {
    // Date 50 s before the response arrived: apparent age 50 of a 60 s lifetime.
    let o = origin(|_, _| {
        resp(
            200,
            &[("cache-control", "max-age=60"), ("date", &date(-50))],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(9).await;
    assert_eq!(send(&mut c, get("/a")).await.age(), Some(59));
    advance(1).await;
    send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn invalid_age_is_ignored() {
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("age", "-3, 7"),
                ("date", &date(0)),
            ],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    assert_eq!(send(&mut c, get("/a")).await.age(), Some(0));
    assert_eq!(o.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn s_maxage_wins_over_max_age() {
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("cache-control", "max-age=5, s-maxage=100"),
                ("date", &date(0)),
            ],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(50).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
    assert_eq!(o.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn expires_minus_date_is_the_lifetime() {
    let o = origin(|_, _| resp(200, &[("expires", &date(30)), ("date", &date(0))], "x"));
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(29).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
    advance(1).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("miss"));
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn expires_in_the_past_or_invalid_is_stale() {
    for expires in [date(-1), "0".to_owned(), "not a date".to_owned()] {
        let o = origin(move |_, _| resp(200, &[("expires", &expires), ("date", &date(0))], "x"));
        let mut c = cache(&o);
        send(&mut c, get("/a")).await;
        send(&mut c, get("/a")).await;
        assert_eq!(o.calls(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn max_age_overrides_expires() {
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("expires", &date(-100)),
                ("cache-control", "max-age=60"),
                ("date", &date(0)),
            ],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(30).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
    // ...and the other way round: Expires in the future does not help max-age=0.
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("expires", &date(100)),
                ("cache-control", "max-age=0"),
                ("date", &date(0)),
            ],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn multiple_cache_control_lines_and_duplicates() {
    let o = origin(|_, _| {
        resp(
            200,
            &[("cache-control", "public"), ("cache-control", "max-age=60")],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
    // Two max-age directives: invalid, treated as stale.
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cache-control", "max-age=60"),
            ],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 2);
    // A malformed directive does not hide the well-formed ones.
    let o = origin(|_, _| {
        resp(
            200,
            &[("cache-control", "max-age=\"60\", foo=\"unterminated")],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
}

#[tokio::test(start_paused = true)]
async fn request_max_age_min_fresh_and_max_stale() {
    // No Date: the cache dates each response when it arrives.
    let o = origin(|_, _| resp(200, &[("cache-control", "max-age=60")], "x"));
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(20).await;
    // max-age=10: the 20 s old copy is refused.
    assert_eq!(
        send(&mut c, req("GET", "/a", &[("cache-control", "max-age=10")]))
            .await
            .x_cache(),
        Some("miss")
    );
    assert_eq!(o.calls(), 2);
    advance(20).await; // the new copy is 20 s old, 40 s left
    assert_eq!(
        send(
            &mut c,
            req("GET", "/a", &[("cache-control", "min-fresh=30")])
        )
        .await
        .x_cache(),
        Some("hit")
    );
    assert_eq!(
        send(
            &mut c,
            req("GET", "/a", &[("cache-control", "min-fresh=50")])
        )
        .await
        .x_cache(),
        Some("miss")
    );
    assert_eq!(o.calls(), 3);
    advance(70).await; // 10 s stale
    let stale = send(
        &mut c,
        req("GET", "/a", &[("cache-control", "max-stale=15")]),
    )
    .await;
    assert_eq!((stale.x_cache(), stale.age()), (Some("stale"), Some(70)));
    assert_eq!(
        send(&mut c, req("GET", "/a", &[("cache-control", "max-stale")]))
            .await
            .x_cache(),
        Some("stale")
    );
    assert_eq!(
        send(
            &mut c,
            req("GET", "/a", &[("cache-control", "max-stale=5")])
        )
        .await
        .x_cache(),
        Some("miss")
    );
    assert_eq!(o.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn must_revalidate_forbids_max_stale() {
    let o = origin(|_, _| {
        resp(
            200,
            &[("cache-control", "max-age=10, must-revalidate")],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    advance(20).await;
    assert_eq!(
        send(&mut c, req("GET", "/a", &[("cache-control", "max-stale")]))
            .await
            .x_cache(),
        Some("miss")
    );
    assert_eq!(o.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn heuristic_freshness_is_off_by_default_and_ten_percent_when_on() {
    let lm = date(-1000);
    let lm2 = lm.clone();
    let o = origin(move |_, _| resp(200, &[("last-modified", &lm), ("date", &date(0))], "x"));
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    send(&mut c, get("/a")).await;
    assert_eq!(
        o.calls(),
        2,
        "no explicit freshness, heuristic off: validated every time"
    );

    let o = origin(move |_, _| resp(200, &[("last-modified", &lm2), ("date", &date(0))], "x"));
    let mut c = layer().heuristic(Heuristic::default()).layer(o.clone());
    send(&mut c, get("/a")).await;
    advance(99).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
    advance(1).await;
    send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 2, "10 % of 1000 s = 100 s");
    let _ = Duration::ZERO;
}
