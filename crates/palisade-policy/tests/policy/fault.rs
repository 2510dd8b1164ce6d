//! The `fault` section: injected failures stand in for the handler, innermost, so the
//! layers above react to them as to real ones.

use crate::support;

use std::time::Duration;

use support::Server;

#[tokio::test(start_paused = true)]
async fn an_injected_abort_is_seen_by_the_breaker_above() {
    let s = Server::toml(
        r#"
        [[routes]]
        match = { prefix = "/pay" }
        breaker = { window = { count = 2 }, minimum_calls = 2, wait_in_open = "1m", max_wait_in_open = "1m" }
        fault = { abort = { probability = 1.0, http_status = 503 } }
        [fallback]
        "#,
    );
    assert_eq!(s.status("/pay").await, 503);
    assert_eq!(s.status("/pay").await, 503);
    assert_eq!(
        s.runs(),
        0,
        "an abort answers instead of calling the handler"
    );
    let open = s.get("/pay").await;
    assert_eq!(open.status(), 503);
    assert!(
        open.headers().contains_key("retry-after"),
        "the breaker opened on injected failures"
    );
    let explained = s.handle.current().explain();
    let stack = &explained["routes"][0]["stack"];
    assert_eq!(stack[1]["layer"], "breaker");
    assert_eq!(stack[2]["layer"], "fault", "fault is innermost");
    assert_eq!(stack[3], "handler");
}

#[tokio::test(start_paused = true)]
async fn an_injected_delay_meets_the_timeout_above() {
    let s = Server::toml(
        r#"
        [fallback]
        timeout = { timeout = "100ms" }
        fault = { delay = { probability = 1.0, latency = { fixed = "1s" } } }
        "#,
    );
    let started = tokio::time::Instant::now();
    assert_eq!(s.status("/x").await, 504);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(
        s.runs(),
        0,
        "the handler had not started when the timeout answered"
    );
}

#[test]
fn a_bad_fault_names_the_field() {
    let err = palisade_policy::PolicySet::from_toml(
        "[fallback]\nfault = { abort = { probability = 2.0, http_status = 503 } }\n",
    )
    .unwrap_err();
    assert_eq!(err.problems()[0].path, "fallback.fault.abort.probability");
}
