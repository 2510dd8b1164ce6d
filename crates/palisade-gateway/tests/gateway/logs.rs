//! The access log: one line per request with route, upstream, status, duration and
//! rejection kind; `--log-format json` and `admin.log_format`.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Gateway, Upstream, bounded, config, get};

fn access_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "palisade_gateway::access")
        .collect()
}

async fn wait_for_lines(gw: &Gateway, n: usize) -> Vec<Value> {
    bounded("access-log lines", async {
        loop {
            let lines = access_lines(&gw.logs());
            if lines.len() >= n {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn rest(upstream: &Upstream) -> String {
    format!(
        r#"
[upstreams.api]
endpoints = ["{0}"]
[[routes]]
name = "limited"
match = {{ prefix = "/limited" }}
rate_limit = {{ quotas = [{{ name = "q", limit = 1, window = "1m" }}] }}
forward = {{ upstream = "api" }}
[[routes]]
name = "split"
match = {{ prefix = "/split" }}
forward = {{ split = {{ arms = [{{ name = "a", upstream = "api" }}, {{ name = "b", upstream = "api2" }}], weights = [0, 1] }} }}
[upstreams.api2]
endpoints = ["{0}"]
[fallback]
forward = {{ upstream = "api" }}
"#,
        upstream.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_has_one_line_per_request() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with(&config("", &rest(&up)), &["--log-format", "json"], true);
    assert_eq!(get(&gw.url("/hello")).await.status, 200);
    assert_eq!(get(&gw.url("/limited")).await.status, 200);
    let refused = get(&gw.url("/limited")).await;
    assert_eq!(refused.status, 429);
    let lines = wait_for_lines(&gw, 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["route"], "fallback");
    assert_eq!(first["upstream"], "api");
    assert_eq!(first["status"], 200);
    assert_eq!(first["rejection"], "-");
    assert!(first["micros"].as_u64().is_some(), "{first}");
    assert_eq!(
        lines[2]["request_id"],
        refused.headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(lines[1]["route"], "limited");
    assert_eq!(lines[2]["status"], 429);
    assert_eq!(lines[2]["rejection"], "rate_limited", "{}", lines[2]);
    // A split route names the group of the arm that served.
    assert_eq!(get(&gw.url("/split")).await.status, 200);
    let lines = wait_for_lines(&gw, 4).await;
    assert_eq!(lines[3]["route"], "split");
    assert_eq!(lines[3]["upstream"], "api2", "{}", lines[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_format_comes_from_the_file_and_text_is_the_default() {
    let up = Upstream::start("api").await;
    let cfg = config("", &rest(&up)).replace(
        "[admin]\naddress = \"127.0.0.1:0\"",
        "[admin]\naddress = \"127.0.0.1:0\"\nlog_format = \"json\"",
    );
    let gw = Gateway::start_with(&cfg, &[], true);
    get(&gw.url("/x")).await;
    assert_eq!(wait_for_lines(&gw, 1).await[0]["status"], 200);

    let gw = Gateway::start_with(&config("", &rest(&up)), &[], true);
    get(&gw.url("/x")).await;
    bounded("a text access line", async {
        loop {
            let logs = gw.logs();
            if let Some(line) = logs
                .lines()
                .find(|l| l.contains("palisade_gateway::access"))
            {
                assert!(line.contains("status=200"), "{line}");
                assert!(line.contains("route=fallback"), "{line}");
                assert!(serde_json::from_str::<Value>(line).is_err());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let out = std::process::Command::new(crate::support::BIN)
        .args(["--log-format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-format takes text or json"));
}
