//! `palisade-gateway check FILE` and a bad `--config`: exit status 2 and every problem with
//! its field path, before binding anything.

use std::process::Command;

use crate::support::{BIN, TempDir};

const BAD: &str = r#"
[[listeners]]
address = "not-an-address"

[upstreams.api]
endpoints = ["127.0.0.1"]

[upstreams.lb]
endpoints = ["127.0.0.1:1"]
load_balancing = "random"

[upstreams.web]
endpoints = ["127.0.0.1:1"]
outlier = { max_ejection_percent = 120 }
health_check = { path = "health" }

[[routes]]
match = { prefix = "/api" }
breaker = { failure_rate_threshold = 120.0 }
forward = { upstream = "nope", strip_prefix = "api" }

[[routes]]
match = { prefix = "/x" }
forward = { upstream = "web", rewrite = "/y/{id}" }

[fallback]
"#;

#[test]
fn check_exits_2_with_every_problem_and_its_path() {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(&path, BAD).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for p in [
        "listeners[0].address",
        "upstreams.api.endpoints[0]",
        "upstreams.lb.load_balancing",
        "upstreams.web.outlier.max_ejection_percent",
        "upstreams.web.health_check.path",
        "routes[0].breaker.failure_rate_threshold",
        "routes[0].forward.upstream",
        "routes[0].forward.strip_prefix",
        "routes[1].forward.rewrite",
    ] {
        assert!(err.contains(p), "no problem at {p} in:\n{err}");
    }
    // Serving the same file fails the same way, before binding.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes[0].forward.upstream"));
}

#[test]
fn check_accepts_a_good_file_and_the_embedded_demo_shape() {
    let dir = TempDir::new();
    let path = dir.0.join("good.toml");
    std::fs::write(
        &path,
        r#"
[[listeners]]
address = "127.0.0.1:8080"
[upstreams.api]
endpoints = ["127.0.0.1:3000", "127.0.0.1:3001"]
load_balancing = "p2c"
health_check = { path = "/health", interval = "5s" }
outlier = { window = 10, base_ejection_time = "5s" }
[[routes]]
match = { path = "/orders/{id}" }
timeout = { timeout = "2s" }
forward = { upstream = "api", rewrite = "/v1/orders/{id}" }
[fallback]
forward = { upstream = "api" }
"#,
    )
    .unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 2 routes"));
}
