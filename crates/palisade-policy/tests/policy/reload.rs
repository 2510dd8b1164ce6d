//! Reload: atomic swap, state kept for unchanged routes, reset for changed ones, bad files
//! rejected with the last good set still serving.

use std::fmt::Write as _;

use crate::support;

use palisade_policy::{Format, PolicyHandle, PolicySet};
use support::Server;

fn file(wait_in_open: &str, extra_route: bool) -> String {
    format!(
        r#"
        [[routes]]
        name = "fail"
        match = {{ prefix = "/fail" }}
        breaker = {{ window = {{ count = 4 }}, minimum_calls = 2, wait_in_open = "{wait_in_open}", max_wait_in_open = "1h" }}
        {}
        [fallback]
        "#,
        if extra_route {
            "[[routes]]\nmatch = { path = \"/new\" }\nrate_limit = { quotas = [{ limit = 1, window = \"1h\" }] }"
        } else {
            ""
        }
    )
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_route_keeps_its_open_breaker_and_a_changed_one_starts_afresh() {
    let s = Server::toml(&file("30s", false));
    assert_eq!(s.status("/fail").await, 500);
    assert_eq!(s.status("/fail").await, 500);
    assert_eq!(s.status("/fail").await, 503);
    assert_eq!(s.runs(), 2);

    // Another route is added; "fail"'s settings are the same: its breaker stays open.
    s.handle
        .reload_str(&file("30s", true), Format::Toml)
        .unwrap();
    assert_eq!(s.status("/fail").await, 503);
    assert_eq!(s.runs(), 2);
    assert_eq!(s.status("/new").await, 200);
    assert_eq!(s.status("/new").await, 429, "the new route is live");
    assert_eq!(s.runs(), 3);

    // "fail"'s breaker settings change: a new, closed breaker.
    s.handle
        .reload_str(&file("20s", true), Format::Toml)
        .unwrap();
    assert_eq!(s.status("/fail").await, 500);
    assert_eq!(s.runs(), 4);
    // "/new" did not change: its bucket is still empty.
    assert_eq!(s.status("/new").await, 429);
    assert_eq!(s.handle.reloads(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_bad_file_is_rejected_and_the_last_good_set_keeps_serving() {
    let s = Server::toml(&file("30s", false));
    assert_eq!(s.status("/fail").await, 500);
    assert_eq!(s.status("/fail").await, 500);
    let err = s
        .handle
        .reload_str(&file("0s", false), Format::Toml)
        .unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "routes[0].breaker.wait_in_open: must be between 1ms and 86400s (got 0ns)"
    );
    assert_eq!(s.handle.failed_reloads(), 1);
    assert_eq!(s.handle.reloads(), 0);
    assert_eq!(s.status("/fail").await, 503, "old set, old (open) breaker");
    assert_eq!(s.runs(), 2);
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_finish_on_the_old_stack() {
    let text = |t: &str| {
        format!(
            "[[routes]]\nmatch = {{ prefix = \"/slow\" }}\ntimeout = {{ timeout = \"{t}\" }}\n[fallback]\n"
        )
    };
    let s = Server::new(PolicyHandle::new(
        PolicySet::from_toml(&text("5s")).unwrap(),
    ));
    let svc = s.svc.clone();
    let in_flight = tokio::spawn(async move {
        use tower::ServiceExt;
        let req = http::Request::get("/slow")
            .body(axum_core::body::Body::empty())
            .unwrap();
        svc.oneshot(req).await.unwrap().status()
    });
    tokio::task::yield_now().await;
    s.handle.reload_str(&text("1s"), Format::Toml).unwrap();
    assert_eq!(
        s.status("/slow").await,
        504,
        "new requests: the new 1 s timeout"
    );
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the old 5 s stack let the 2 s handler finish"
    );
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_requests_in_flight_across_twenty_reloads_of_1000_routes_all_get_an_answer() {
    // 1,000 routes, all changed by every reload (their timeout flips). The two files also
    // differ in their number of routes, and the extra route's stack would answer 504 at
    // once: a request matched against one set but sent to a stack of the other would show.
    let text = |t: &str| {
        let extra = if t == "6s" {
            "[[routes]]\nmatch = { prefix = \"/x\" }\ntimeout = { timeout = \"1ms\" }\n"
        } else {
            ""
        };
        let mut routes = String::new();
        for i in 0..999 {
            let _ = write!(
                routes,
                "[[routes]]\nmatch = {{ path = \"/r{i}/{{id}}\" }}\ntimeout = {{ timeout = \"{t}\" }}\n"
            );
        }
        format!(
            "{extra}{routes}[[routes]]\nmatch = {{ prefix = \"/slow\" }}\ntimeout = {{ timeout = \"{t}\" }}\nbulkhead = {{ max_concurrent = 100000 }}\n[fallback]\n"
        )
    };
    let s = Server::new(PolicyHandle::new(
        PolicySet::from_toml(&text("5s")).unwrap(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..20 {
        for _ in 0..500 {
            let svc = s.svc.clone();
            tasks.spawn(async move {
                use tower::ServiceExt;
                let req = http::Request::get("/slow")
                    .body(axum_core::body::Body::empty())
                    .unwrap();
                svc.oneshot(req).await.unwrap().status()
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await; // all started
        let next = if round % 2 == 0 { "6s" } else { "5s" }; // every reload changes the stack
        s.handle.reload_str(&text(next), Format::Toml).unwrap();
    }
    assert_eq!(
        s.runs(),
        10_000,
        "every request reached the handler before the last reload"
    );
    let mut ok = 0;
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, 10_000);
    assert_eq!(s.handle.reloads(), 20);
    assert_eq!(
        s.handle.current().route_count(),
        1_001,
        "999 + /slow + the fallback"
    );
}
