//! A set built in code behaves, explains and reloads like the same file.

use crate::support;

use std::time::Duration;

use palisade_breaker::{BreakerConfig, SlidingWindow};
use palisade_policy::{Matcher, Policy, PolicyHandle, PolicySet};
use palisade_ratelimit::{QuotaConfig, RateLimitConfig};
use palisade_timeout::TimeoutConfig;
use support::Server;

fn quota(limit: u32) -> RateLimitConfig {
    let mut rl = RateLimitConfig::default();
    rl.quotas = vec![QuotaConfig::new("q", limit, Duration::from_secs(60))];
    rl
}

#[tokio::test(start_paused = true)]
async fn a_built_set_serves_like_the_file() {
    let set = PolicySet::builder()
        .defaults(
            Policy::builder()
                .timeout(TimeoutConfig::new(Duration::from_secs(1)))
                .build()
                .unwrap(),
        )
        .policy(
            "limited",
            Policy::builder().rate_limit(quota(1)).build().unwrap(),
        )
        .route(
            "search",
            Matcher::prefix("/search").unwrap(),
            Policy::builder().inherit("limited").build().unwrap(),
        )
        .route(
            "slow",
            Matcher::prefix("/slow").unwrap(),
            Policy::builder().off("timeout").build().unwrap(),
        )
        .fallback(Policy::default())
        .build()
        .unwrap();
    assert_eq!(set.route_names(), ["search", "slow", "fallback"]);
    let explained = set.explain();
    assert_eq!(explained["routes"][0]["policy"], "limited");
    assert_eq!(
        explained["routes"][0]["stack"][1]["settings"]["quotas"]["from"],
        "policy limited"
    );
    assert_eq!(
        explained["routes"][0]["stack"][2]["settings"]["timeout"]["value"],
        "1s"
    );
    let s = Server::new(PolicyHandle::new(set));
    assert_eq!(s.status("/search").await, 200);
    assert_eq!(s.status("/search").await, 429, "the named policy's quota");
    assert_eq!(
        s.status("/slow").await,
        200,
        "timeout switched off: the 2 s handler finishes"
    );
    assert_eq!(s.status("/slowly/x").await, 504, "the default 1 s timeout");
}

#[test]
fn a_bad_section_is_reported_with_its_field_path() {
    let mut b = BreakerConfig::default();
    b.failure_rate_threshold = 120.0;
    b.window = SlidingWindow::Count(100);
    let err = Policy::builder().breaker(b).build().unwrap_err();
    assert_eq!(err.problems()[0].path, "breaker.failure_rate_threshold");
    let err = Policy::builder().off("breakr").build().unwrap_err();
    assert_eq!(err.problems()[0].path, "breakr");
}

#[test]
fn set_level_problems_name_the_place() {
    let err = PolicySet::builder()
        .route(
            "a",
            Matcher::prefix("/a").unwrap(),
            Policy::builder().inherit("nope").build().unwrap(),
        )
        .route("a", Matcher::prefix("/b").unwrap(), Policy::default())
        .build()
        .unwrap_err();
    let paths: Vec<_> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["routes[0].policy", "routes[1].name", "fallback"]);
}
