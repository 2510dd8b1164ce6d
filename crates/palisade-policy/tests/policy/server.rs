//! Per-route stacks through real requests, on paused time.

use crate::support;

use axum_core::body::Body;
use http::Request;
use support::Server;

const BREAKER: &str = r#"{ window = { count = 4 }, minimum_calls = 2, failure_rate_threshold = 50.0, wait_in_open = "30s", max_wait_in_open = "30s" }"#;

#[tokio::test(start_paused = true)]
async fn a_routes_quota_answers_429_with_retry_after_and_the_handler_does_not_run() {
    let s = Server::toml(
        r#"
        [[routes]]
        match = { path = "/search" }
        rate_limit = { quotas = [{ name = "search", limit = 2, window = "1m" }], response_headers = false }
        [fallback]
        "#,
    );
    assert_eq!(s.status("/search").await, 200);
    let ok = s.get("/search").await;
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers().get("ratelimit").is_none(),
        "response_headers = false"
    );
    let res = s.get("/search").await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "30");
    assert_eq!(s.runs(), 2);
    // Other paths take the fallback, which has no limit.
    for _ in 0..5 {
        assert_eq!(s.status("/other").await, 200);
    }
    assert_eq!(s.runs(), 7);
}

#[tokio::test(start_paused = true)]
async fn breakers_open_per_route_independently() {
    let s = Server::toml(&format!(
        r#"
        [defaults]
        breaker = {BREAKER}
        [[routes]]
        match = {{ prefix = "/fail" }}
        [[routes]]
        match = {{ prefix = "/ok" }}
        [fallback]
        breaker = false
        "#
    ));
    assert_eq!(s.status("/fail/a").await, 500);
    assert_eq!(s.status("/fail/a").await, 500);
    assert_eq!(s.status("/fail/a").await, 503, "open after 2 failures of 2");
    assert_eq!(s.runs(), 2);
    // The other route's breaker is its own, and closed.
    assert_eq!(s.status("/ok").await, 200);
    assert_eq!(s.runs(), 3);
    // The fallback switched the inherited breaker off: failures never open anything.
    for _ in 0..4 {
        assert_eq!(s.status("/fail-fallback-is-not-a-prefix-match").await, 500);
    }
}

#[tokio::test(start_paused = true)]
async fn first_match_wins_and_unmatched_requests_take_the_fallback() {
    let s = Server::toml(
        r#"
        [[routes]]
        name = "posts"
        match = { method = "POST", path = "/orders/{id}" }
        rate_limit = { quotas = [{ limit = 1, window = "1m" }] }
        [[routes]]
        name = "orders"
        match = { prefix = "/orders" }
        bulkhead = { max_concurrent = 1 }
        [fallback]
        rate_limit = { quotas = [{ limit = 1, window = "1h" }] }
        "#,
    );
    let post = || Request::post("/orders/7").body(Body::empty()).unwrap();
    assert_eq!(s.req(post()).await.status(), 200);
    assert_eq!(
        s.req(post()).await.status(),
        429,
        "the POST route's own quota"
    );
    // GETs fall through to the prefix route: no limit.
    for _ in 0..3 {
        assert_eq!(s.status("/orders/7").await, 200);
    }
    // Anything else: the fallback's 1 per hour.
    assert_eq!(s.status("/elsewhere").await, 200);
    assert_eq!(s.status("/nowhere").await, 429);
    assert_eq!(s.runs(), 5);
}

#[tokio::test(start_paused = true)]
async fn route_over_policy_over_defaults_field_by_field() {
    let s = Server::toml(
        r#"
        [defaults]
        timeout = { timeout = "10s", deadline_header = "x-budget-ms" }
        [policies.slow]
        timeout = { timeout = "3s" }
        [[routes]]
        match = { path = "/slow/policy" }
        policy = "slow"
        [[routes]]
        match = { path = "/slow/route" }
        policy = "slow"
        timeout = { timeout = "1s" }
        [fallback]
        "#,
    );
    // The policy's 3 s replaces the default 10 s; the handler's 2 s fits.
    assert_eq!(s.status("/slow/policy").await, 200);
    // The route's 1 s replaces the policy's 3 s.
    assert_eq!(s.status("/slow/route").await, 504);
    // The default's deadline_header is still inherited field by field under the policy's timeout.
    let req = Request::get("/slow/policy")
        .header("x-budget-ms", "100")
        .body(Body::empty())
        .unwrap();
    assert_eq!(s.req(req).await.status(), 504);
    // And by the fallback, with the default 10 s.
    assert_eq!(s.status("/slow/fallback").await, 200);
    let req = Request::get("/slow/fallback")
        .header("x-budget-ms", "100")
        .body(Body::empty())
        .unwrap();
    assert_eq!(s.req(req).await.status(), 504);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_extension_is_inserted_only_on_opt_in() {
    let s = Server::toml(
        r#"
        [[routes]]
        match = { path = "/opt-in" }
        timeout = { timeout = "5s", insert_deadline = true }
        [fallback]
        timeout = { timeout = "5s" }
        "#,
    );
    assert_eq!(s.get("/opt-in").await.headers()["x-deadline"], "yes");
    assert!(s.get("/other").await.headers().get("x-deadline").is_none());
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_counts_requests_the_breaker_refuses() {
    // Canonical order: rate limit outside the breaker, so refusals by an open breaker still
    // spend quota (a client cannot probe an open route for free).
    let s = Server::toml(&format!(
        r#"
        [[routes]]
        match = {{ prefix = "/fail" }}
        rate_limit = {{ quotas = [{{ limit = 4, window = "1h" }}] }}
        breaker = {BREAKER}
        [fallback]
        "#
    ));
    assert_eq!(s.status("/fail").await, 500);
    assert_eq!(s.status("/fail").await, 500);
    assert_eq!(s.status("/fail").await, 503);
    assert_eq!(s.status("/fail").await, 503);
    assert_eq!(s.status("/fail").await, 429);
    assert_eq!(s.runs(), 2);
}
