//! The `cache` section: hits are answered below the rate limit and above the handler.

use crate::support;

use support::Server;

#[tokio::test(start_paused = true)]
async fn a_cached_response_is_served_without_the_handler_but_counts_against_the_quota() {
    let s = Server::toml(
        r#"
        [[routes]]
        match = { prefix = "/cached" }
        rate_limit = { quotas = [{ limit = 3, window = "1h" }] }
        cache = { max_bytes = 1048576 }
        [fallback]
        "#,
    );
    assert_eq!(s.status("/cached").await, 200);
    assert_eq!(s.status("/cached").await, 200, "a hit");
    assert_eq!(s.runs(), 1, "the hit did not reach the handler");
    // The rate limit above the cache counts hits too.
    assert_eq!(s.status("/cached").await, 200);
    assert_eq!(s.status("/cached").await, 429);
    assert_eq!(s.runs(), 1);
    let explained = s.handle.current().explain();
    let stack = &explained["routes"][0]["stack"];
    assert_eq!(stack[1]["layer"], "rate_limit");
    assert_eq!(stack[2]["layer"], "cache");
}

#[test]
fn a_client_cache_is_refused_not_ignored() {
    let err = palisade_policy::PolicySet::from_toml(
        "[fallback]\n[[clients]]\nhost = \"a\"\ncache = { max_bytes = 1048576 }\n",
    )
    .unwrap_err();
    assert_eq!(err.problems()[0].path, "clients[0].cache");
}
