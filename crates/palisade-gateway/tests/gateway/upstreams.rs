//! Upstream groups: passive ejection and recovery, the ejection cap, active health checks,
//! and upstream failures as 502/504.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{Gateway, Upstream, bounded, config, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_and_comes_back() {
    let good = Upstream::start("good").await;
    let bad = Upstream::start("bad").await;
    bad.status.store(500, Ordering::Relaxed);
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.g]
endpoints = ["{}", "{}"]
outlier = {{ window = 4, minimum_calls = 2, failure_rate = 50.0, base_ejection_time = "400ms", max_ejection_time = "2s", growth = 2.0, max_ejection_percent = 50 }}
[fallback]
forward = {{ upstream = "g" }}
"#,
            good.addr, bad.addr
        ),
    ));
    // Round robin: the bad endpoint gets every other request until ejected.
    for _ in 0..6 {
        get(&gw.url("/")).await;
    }
    let bad_hits = bad.hits();
    assert!(
        (2..=3).contains(&bad_hits),
        "bad endpoint hits before ejection: {bad_hits}"
    );
    for _ in 0..6 {
        assert_eq!(
            get(&gw.url("/")).await.status,
            200,
            "ejected: only the good one answers"
        );
    }
    assert_eq!(bad.hits(), bad_hits);
    let breakers: serde_json::Value =
        serde_json::from_str(&get(&gw.admin_url("/breakers")).await.body).unwrap();
    let eps = &breakers["upstreams"][0]["endpoints"];
    assert_eq!(eps[1]["ejected"], true, "{breakers}");
    assert_eq!(eps[0]["ejected"], false);

    // The endpoint recovers: after the ejection time a probe reaches it, succeeds, and it
    // takes its share again.
    bad.status.store(200, Ordering::Relaxed);
    bounded("the endpoint coming back", async {
        loop {
            get(&gw.url("/")).await;
            if bad.hits() > bad_hits + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejection_never_exceeds_the_cap() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    a.status.store(500, Ordering::Relaxed);
    b.status.store(500, Ordering::Relaxed);
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.g]
endpoints = ["{}", "{}"]
outlier = {{ window = 4, minimum_calls = 2, base_ejection_time = "30s", max_ejection_percent = 50 }}
[fallback]
forward = {{ upstream = "g" }}
"#,
            a.addr, b.addr
        ),
    ));
    for _ in 0..20 {
        let res = get(&gw.url("/")).await;
        assert_eq!(
            res.status, 500,
            "the upstream's own answer, never 503: {}",
            res.body
        );
    }
    // Half of the group may be ejected; the other endpoint keeps getting requests.
    let (ha, hb) = (a.hits(), b.hits());
    assert!(ha >= 2 && hb >= 2, "hits a={ha} b={hb}");
    assert!(ha + hb == 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_an_endpoint_out_and_back() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.g]
endpoints = ["{}", "{}"]
load_balancing = "p2c"
health_check = {{ path = "/health", interval = "50ms", timeout = "40ms", healthy_threshold = 1, unhealthy_threshold = 2 }}
[fallback]
forward = {{ upstream = "g" }}
"#,
            a.addr, b.addr
        ),
    ));
    // b fails its health checks (and would answer 503).
    b.status.store(503, Ordering::Relaxed);
    bounded("b marked unhealthy", async {
        loop {
            let h: serde_json::Value =
                serde_json::from_str(&get(&gw.admin_url("/health")).await.body).unwrap();
            if h["checks"]["upstream:g"][0]["observedValue"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let before = b.hits();
    for _ in 0..10 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert_eq!(b.hits(), before, "no request to an unhealthy endpoint");
    b.status.store(200, Ordering::Relaxed);
    bounded("b healthy again", async {
        loop {
            get(&gw.url("/")).await;
            if b.hits() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_become_502_and_504() {
    let slow = Upstream::start("slow").await;
    slow.delay_ms.store(2_000, Ordering::Relaxed);
    // A port nothing listens on: bind one and drop it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.dead]
endpoints = ["{dead}"]
[upstreams.slow]
endpoints = ["{}"]
timeout = "200ms"
[[routes]]
match = {{ prefix = "/dead" }}
forward = {{ upstream = "dead" }}
[[routes]]
match = {{ prefix = "/slow" }}
forward = {{ upstream = "slow" }}
[fallback]
"#,
            slow.addr
        ),
    ));
    let res = get(&gw.url("/dead")).await;
    assert_eq!(res.status, 502);
    assert_eq!(res.headers["content-type"], "application/problem+json");
    let res = get(&gw.url("/slow")).await;
    assert_eq!(res.status, 504);
    // A route without `forward` answers 404.
    assert_eq!(get(&gw.url("/nowhere")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_prefers_the_faster_endpoint() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    slow.delay_ms.store(150, Ordering::Relaxed);
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.g]
endpoints = ["{}", "{}"]
load_balancing = "p2c_ewma"
[fallback]
forward = {{ upstream = "g" }}
"#,
            fast.addr, slow.addr
        ),
    ));
    // One request at a time, so requests in flight never differ: plain p2c would split
    // these evenly; the latency average sends nearly all of them to the fast endpoint.
    for _ in 0..30 {
        assert_eq!(get(&gw.url("/")).await.status, 200);
    }
    assert!(slow.hits() <= 2, "slow endpoint hits: {}", slow.hits());
    assert_eq!(fast.hits() + slow.hits(), 30);
    let b: serde_json::Value =
        serde_json::from_str(&get(&gw.admin_url("/breakers")).await.body).unwrap();
    let eps = &b["upstreams"][0]["endpoints"];
    assert_eq!(b["upstreams"][0]["load_balancing"], "p2c_ewma");
    assert!(
        eps[1]["latency_ewma_ms"].as_f64().unwrap() > eps[0]["latency_ewma_ms"].as_f64().unwrap(),
        "{b}"
    );
}
