//! Release patterns as config, the canary side: a weighted split with sticky keys and an
//! override header, canary analysis with automatic rollback, pause and resume.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Gateway, Upstream, bounded, config, get, get_with, post};

async fn canaries(gw: &Gateway) -> Value {
    serde_json::from_str(&get(&gw.admin_url("/canaries")).await.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_through_the_proxy() {
    let stable = Upstream::start("stable").await;
    let canary = Upstream::start("canary").await;
    canary.status.store(500, Ordering::Relaxed);
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.v1]
endpoints = ["{}"]
[upstreams.v2]
endpoints = ["{}"]

[[routes]]
name = "web"
match = {{ prefix = "/" }}
[routes.forward.split]
arms = [{{ name = "stable", upstream = "v1" }}, {{ name = "canary", upstream = "v2" }}]
response_header = "x-arm"
canary = {{ steps = [50, 100], interval = "1s", min_samples = 5, max_error_rate_increase = 0.1 }}

[fallback]
"#,
            stable.addr, canary.addr
        ),
    ));
    let c = canaries(&gw).await;
    let split = &c["splits"][0];
    assert_eq!(split["route"], "web");
    assert_eq!(split["canary"]["state"], "progressing");
    assert_eq!(split["canary"]["percent"], 50);
    assert_eq!(split["arms"][1]["weight"], 50, "{c}");
    // At 50 % the canary answers about half the requests, with its 500s.
    let mut by_arm = (0, 0);
    for _ in 0..40 {
        let res = get(&gw.url("/x")).await;
        match res.headers["x-arm"].to_str().unwrap() {
            "stable" => {
                assert_eq!(res.status, 200);
                by_arm.0 += 1;
            }
            "canary" => {
                assert_eq!(res.status, 500);
                by_arm.1 += 1;
            }
            other => panic!("arm {other}"),
        }
    }
    assert!(by_arm.1 >= 5, "canary share at 50 %: {by_arm:?}");
    assert_eq!(canary.hits(), by_arm.1);
    // The next analysis (every second) sees 100 % errors against 0 % and rolls back.
    let c = bounded("the canary rolled back", async {
        loop {
            let c = canaries(&gw).await;
            if c["splits"][0]["canary"]["state"] == "rolled_back" {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let split = &c["splits"][0];
    assert_eq!(split["arms"][0]["weight"], 100, "{c}");
    assert_eq!(split["arms"][1]["weight"], 0);
    assert!(
        split["canary"]["rollback_reason"]
            .as_str()
            .unwrap()
            .starts_with("error rate 100.0%"),
        "{c}"
    );
    let hits = canary.hits();
    for _ in 0..20 {
        let res = get(&gw.url("/x")).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["x-arm"], "stable");
    }
    assert_eq!(
        canary.hits(),
        hits,
        "no request reaches a rolled-back canary"
    );
    // The status page and the metrics show it.
    let page = get(&gw.admin_url("/")).await.body;
    assert!(
        page.contains("rolled_back at 0%: error rate 100.0%"),
        "{page}"
    );
    bounded("the weight gauge sampled", async {
        loop {
            let m = get(&gw.admin_url("/metrics")).await.body;
            if m.lines().any(|l| {
                l.starts_with("palisade_canary_weight_percent{")
                    && l.contains(r#"arm="stable""#)
                    && l.ends_with(" 100")
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_is_sticky_per_key_and_obeys_an_authorised_override() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.v1]
endpoints = ["{}"]
[upstreams.v2]
endpoints = ["{}"]

[[routes]]
name = "app"
match = {{ prefix = "/" }}
[routes.forward.split]
arms = [{{ name = "stable", upstream = "v1" }}, {{ name = "canary", upstream = "v2" }}]
weights = [50, 50]
sticky = {{ type = "header", name = "x-user" }}
override_header = "x-arm"
override_access = {{ type = "secret", header = "x-override-token", secret = "0123456789abcdef" }}

[fallback]
"#,
            v1.addr, v2.addr
        ),
    ));
    let mut arms = std::collections::BTreeSet::new();
    for user in 0..16 {
        let user = format!("user-{user}");
        let first = get_with(&gw.url("/"), &[("x-user", user.as_str())]).await;
        let arm = first.headers["x-upstream"].clone();
        for _ in 0..4 {
            let res = get_with(&gw.url("/"), &[("x-user", user.as_str())]).await;
            assert_eq!(res.headers["x-upstream"], arm, "{user} moved");
        }
        arms.insert(arm.to_str().unwrap().to_owned());
    }
    assert_eq!(arms.len(), 2, "16 users over a 50/50 split use both arms");
    // The override header picks the arm, with the secret only.
    for _ in 0..5 {
        let res = get_with(
            &gw.url("/"),
            &[
                ("x-user", "user-0"),
                ("x-arm", "canary"),
                ("x-override-token", "0123456789abcdef"),
            ],
        )
        .await;
        assert_eq!(res.headers["x-upstream"], "v2");
        let res = get_with(
            &gw.url("/"),
            &[
                ("x-user", "user-0"),
                ("x-arm", "stable"),
                ("x-override-token", "0123456789abcdef"),
            ],
        )
        .await;
        assert_eq!(res.headers["x-upstream"], "v1");
    }
    let plain = get_with(&gw.url("/"), &[("x-user", "user-0")]).await;
    let other = if plain.headers["x-upstream"] == "v1" {
        "canary"
    } else {
        "stable"
    };
    let res = get_with(
        &gw.url("/"),
        &[
            ("x-user", "user-0"),
            ("x-arm", other),
            ("x-override-token", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        res.headers["x-upstream"], plain.headers["x-upstream"],
        "an override without the secret is ignored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_analysis_pauses_and_resumes() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.v1]
endpoints = ["{}"]
[upstreams.v2]
endpoints = ["{}"]

[[routes]]
name = "api"
match = {{ prefix = "/" }}
[routes.forward.split]
arms = [{{ name = "stable", upstream = "v1" }}, {{ name = "canary", upstream = "v2" }}]
canary = {{ steps = [20, 60, 100], interval = "1s", min_samples = 1, paused = true }}

[fallback]
"#,
            v1.addr, v2.addr
        ),
    ));
    for _ in 0..30 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert!(v2.hits() > 0, "the canary gets its first step's share");
    // Paused from the start: after two intervals, still at the first step.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let c = canaries(&gw).await;
    assert_eq!(c["splits"][0]["canary"]["percent"], 20, "{c}");
    assert_eq!(c["splits"][0]["canary"]["paused"], true);
    let res = post(&gw.admin_url("/canaries/api/resume")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    bounded("the canary advances", async {
        loop {
            get(&gw.url("/")).await;
            let c = canaries(&gw).await;
            if c["splits"][0]["canary"]["percent"] == 60 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let res = post(&gw.admin_url("/canaries/api/pause")).await;
    assert_eq!(res.status, 200);
    let v: Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(v["canary"]["paused"], true);
    assert_eq!(
        post(&gw.admin_url("/canaries/nope/pause")).await.status,
        404
    );
}
