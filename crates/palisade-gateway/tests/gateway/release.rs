//! Release patterns as config, the switching side: blue-green switch and drain through the
//! admin API, strangler fig, read/write split by method, splits across a reload, and the
//! problems of a bad `forward.split`.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

use crate::support::{Answer, BIN, Gateway, TempDir, Upstream, bounded, config, get, post, send};

async fn canaries(gw: &Gateway) -> Value {
    serde_json::from_str(&get(&gw.admin_url("/canaries")).await.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switch_lets_in_flight_requests_finish_on_the_old_side() {
    let blue = Upstream::start("blue").await;
    let green = Upstream::start("green").await;
    blue.delay_ms.store(800, Ordering::Relaxed);
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.blue]
endpoints = ["{}"]
[upstreams.green]
endpoints = ["{}"]

[[routes]]
name = "site"
match = {{ prefix = "/" }}
forward = {{ split = {{ arms = [{{ name = "blue", upstream = "blue" }}, {{ name = "green", upstream = "green" }}] }} }}

[fallback]
"#,
            blue.addr, green.addr
        ),
    ));
    // Three slow requests on blue (all traffic goes to the first arm by default).
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let url = gw.url("/slow");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    bounded("three requests reach blue", async {
        while blue.hits() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let res = post(&gw.admin_url("/splits/site/switch/green")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = post(&gw.admin_url("/splits/site/drain/blue")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    // New requests go to green at once, while blue's are still in flight.
    for _ in 0..5 {
        let res = get(&gw.url("/new")).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["x-upstream"], "green");
    }
    assert!(
        in_flight.iter().all(|t| !t.is_finished()),
        "blue's requests were still running during the switch"
    );
    for t in in_flight {
        let res = bounded("an in-flight request", t).await.unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(
            res.headers["x-upstream"], "blue",
            "finished on the old side"
        );
    }
    assert_eq!(blue.hits(), 3);
    let c = canaries(&gw).await;
    let arms = &c["splits"][0]["arms"];
    assert_eq!(arms[0]["drained"], true, "{c}");
    assert_eq!(arms[1]["weight"], 100);
    assert_eq!(arms[1]["share"], 100.0);
    assert_eq!(arms[0]["share"], 0.0);
    // Draining the last arm with weight is refused; unknown routes and arms are answered.
    let res = post(&gw.admin_url("/splits/site/drain/green")).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(
        post(&gw.admin_url("/splits/nope/switch/green"))
            .await
            .status,
        404
    );
    assert_eq!(
        post(&gw.admin_url("/splits/site/switch/purple"))
            .await
            .status,
        404
    );
    // And back: switching to blue undrains it.
    assert_eq!(
        post(&gw.admin_url("/splits/site/switch/blue")).await.status,
        200
    );
    blue.delay_ms.store(0, Ordering::Relaxed);
    assert_eq!(get(&gw.url("/")).await.headers["x-upstream"], "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangler_fig_and_read_write_split() {
    let legacy = Upstream::start("legacy").await;
    let new = Upstream::start("new").await;
    let primary = Upstream::start("primary").await;
    let replica = Upstream::start("replica").await;
    let gw = Gateway::start(&config(
        "",
        &format!(
            r#"
[upstreams.legacy]
endpoints = ["{}"]
[upstreams.new]
endpoints = ["{}"]
[upstreams.primary]
endpoints = ["{}"]
[upstreams.replica]
endpoints = ["{}"]

# Strangler fig, with route matchers: /users has moved to the new service.
[[routes]]
match = {{ prefix = "/users" }}
forward = {{ upstream = "new" }}

# Read/write split by method (CQRS): reads to the replica, the rest to the primary.
[[routes]]
match = {{ prefix = "/db" }}
[routes.forward.split]
arms = [{{ name = "primary", upstream = "primary" }}, {{ name = "replica", upstream = "replica" }}]
rules = [{{ methods = ["GET", "HEAD"], arm = "replica" }}]

# Strangler fig, with path rules in a split: /orders has moved too; the rest stays legacy.
[fallback.forward.split]
arms = [{{ name = "legacy", upstream = "legacy" }}, {{ name = "new", upstream = "new" }}]
rules = [{{ path_prefix = "/orders", arm = "new" }}]
"#,
            legacy.addr, new.addr, primary.addr, replica.addr
        ),
    ));
    let served = |a: Answer| {
        a.headers
            .get("x-upstream")
            .unwrap_or_else(|| panic!("not forwarded: {a:?}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(served(get(&gw.url("/users/7")).await), "new");
    assert_eq!(served(get(&gw.url("/orders/7")).await), "new");
    assert_eq!(served(get(&gw.url("/orders")).await), "new");
    assert_eq!(served(get(&gw.url("/ordersx")).await), "legacy");
    assert_eq!(served(get(&gw.url("/invoices/1")).await), "legacy");
    assert_eq!(served(get(&gw.url("/db/items")).await), "replica");
    let post_db = send(
        Request::post(gw.url("/db/items"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap(),
    )
    .await;
    assert_eq!(served(post_db), "primary");
    let del = send(
        Request::delete(gw.url("/db/items/1"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(served(del), "primary");
    assert_eq!((legacy.hits(), new.hits()), (2, 3));
    assert_eq!((primary.hits(), replica.hits()), (2, 1));
}

#[test]
fn split_problems_are_reported_with_their_paths() {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[[listeners]]
address = "127.0.0.1:0"
[upstreams.a]
endpoints = ["127.0.0.1:1"]

[[routes]]
match = { prefix = "/one" }
forward = { upstream = "a", split = { arms = [{ name = "x", upstream = "a" }] } }

[[routes]]
match = { prefix = "/two" }
[routes.forward.split]
arms = [{ name = "x", upstream = "a" }, { name = "y", upstream = "nope" }]
sticky = { type = "header", name = "bad header" }
canary = { steps = [50, 20] }

[[routes]]
match = { prefix = "/three" }
[routes.forward.split]
arms = [{ name = "x", upstream = "a" }, { name = "y", upstream = "a" }]
weights = [1, 2, 3]
weightz = 1

[[routes]]
match = { prefix = "/four" }
[routes.forward.split]
arms = [{ name = "x", upstream = "a" }, { name = "y", upstream = "a" }]
rules = [{ path_prefix = "/z", arm = "z" }]
canary = { stable = "x", canary = "x" }

[fallback]
"#,
    )
    .unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for p in [
        "routes[0].forward: needs exactly one of `upstream`",
        "routes[1].forward.split.arms[1].upstream",
        "routes[1].forward.split.sticky.name",
        "routes[1].forward.split.canary.steps",
        "routes[2].forward.split.weightz",
        "routes[3].forward.split.rules",
    ] {
        assert!(err.contains(p), "no problem at {p} in:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_an_unchanged_split_and_restarts_a_changed_one() {
    let blue = Upstream::start("blue").await;
    let green = Upstream::start("green").await;
    let file = |weights: &str| {
        config(
            "",
            &format!(
                r#"
[upstreams.blue]
endpoints = ["{}"]
[upstreams.green]
endpoints = ["{}"]
[[routes]]
name = "site"
match = {{ prefix = "/" }}
[routes.forward.split]
arms = [{{ name = "blue", upstream = "blue" }}, {{ name = "green", upstream = "green" }}]
weights = {weights}
[fallback]
"#,
                blue.addr, green.addr
            ),
        )
    };
    let gw = Gateway::start(&file("[100, 0]"));
    assert_eq!(get(&gw.url("/")).await.headers["x-upstream"], "blue");
    assert_eq!(
        post(&gw.admin_url("/splits/site/switch/green"))
            .await
            .status,
        200
    );
    // The same file again: the switch stays.
    let res = post(&gw.admin_url("/reload")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/")).await.headers["x-upstream"], "green");
    }
    // A changed split starts again from the file.
    std::fs::write(gw.config_path(), file("[100, 0] # changed\nseed = 7")).unwrap();
    let res = post(&gw.admin_url("/reload")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/")).await.headers["x-upstream"], "blue");
    }
}
