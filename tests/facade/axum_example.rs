//! The axum example's per-route stacks, against a real server: statuses, headers, handler
//! executions, and the layer order the example documents.
#![cfg(all(
    feature = "timeout",
    feature = "ratelimit",
    feature = "breaker",
    feature = "bulkhead",
    feature = "idempotency",
    feature = "toggle"
))]

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/axum.rs"]
mod example;

use crate::support;

use std::sync::atomic::Ordering;

use palisade::toggle::{Flag, FlagSet};

#[tokio::test]
async fn per_route_stacks_behave_as_documented() {
    let flags = example::flags();
    let base = support::serve(example::app(flags.clone()).unwrap()).await;
    let c = reqwest::Client::new();
    let before = example::CHARGES.load(Ordering::SeqCst);

    // /pay: idempotency key required → 400 problem, handler not run.
    let res = c
        .post(format!("{base}/pay"))
        .header("x-api-key", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    // First payment: 201 with the IETF RateLimit fields; the retry is a byte-identical replay.
    let pay = |key: &'static str| {
        c.post(format!("{base}/pay"))
            .header("x-api-key", "t")
            .header("idempotency-key", key)
            .send()
    };
    let first = pay("\"o-1\"").await.unwrap();
    assert_eq!(first.status(), 201);
    assert_eq!(first.headers()["ratelimit-policy"], "\"pay\";q=5;w=60");
    let first_body = first.bytes().await.unwrap();
    let again = pay("\"o-1\"").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first_body);
    assert_eq!(
        example::CHARGES.load(Ordering::SeqCst) - before,
        1,
        "charged once"
    );

    // The rate limit sits outside idempotency: the 6th call this minute is a 429, replay or not.
    for key in ["\"o-2\"", "\"o-3\""] {
        assert_eq!(pay(key).await.unwrap().status(), 201);
    }
    let limited = pay("\"o-4\"").await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(
        limited.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"pay\";r=0;t=")
    );
    assert_eq!(example::CHARGES.load(Ordering::SeqCst) - before, 3);

    // /search: three timeouts (504) open the breaker; the next call is a fast 503 + Retry-After.
    for _ in 0..3 {
        let res = c
            .get(format!("{base}/search?delay_ms=1000"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 504);
    }
    let started = std::time::Instant::now();
    let res = c.get(format!("{base}/search")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "30");
    assert!(started.elapsed() < std::time::Duration::from_millis(250));

    // /beta: 404 while the flag is off, 200 once it is switched on at runtime.
    assert_eq!(
        c.get(format!("{base}/beta")).send().await.unwrap().status(),
        404
    );
    flags.set(FlagSet::new().with("beta", Flag::boolean(true)));
    let res = c.get(format!("{base}/beta")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "welcome to beta");
}
