//! The `palisade-policy` binary: exit codes and output, for CI use.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_palisade-policy"))
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml")
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("palisade-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_the_example_and_reports_its_warnings() {
    let out = bin().arg("check").arg(example()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with("ok (4 routes including the fallback, 1 warnings)\n")
    );
    assert!(
        stderr.contains("warning: routes[0].idempotency: no `scope`"),
        "{stderr}"
    );
    let out = bin()
        .args(["check", "--deny-warnings"])
        .arg(example())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_fails_with_every_problem_on_a_bad_file() {
    let path = temp(
        "bad.toml",
        "[[routes]]\nmatch = { path = \"x\" }\nbreaker = { failure_rate_threshold = 120.0 }\n",
    );
    let out = bin().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid policy file (3 problems):"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\n  routes[0].match.path: `x` must start with `/`"),
        "{stderr}"
    );
    assert!(stderr.contains("\n  fallback: is required"), "{stderr}");
    assert!(stderr.contains("\n  routes[0].breaker.failure_rate_threshold: must be a percentage in (0, 100] (got 120)"), "{stderr}");
    let out = bin().arg("explain").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn explain_prints_the_effective_stacks_as_json() {
    let out = bin().arg("explain").arg(example()).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["routes"][2]["name"], "orders");
    assert_eq!(v["routes"][2]["stack"][1]["layer"], "timeout");
    assert_eq!(
        v["routes"][2]["stack"][1]["settings"]["timeout"]["from"],
        "route"
    );
    assert_eq!(
        v["routes"][2]["stack"][1]["settings"]["deadline_header"]["from"],
        "default"
    );
    assert_eq!(v["routes"][3]["name"], "fallback");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(bin().output().unwrap().status.code(), Some(2));
    assert_eq!(
        bin()
            .args(["lint", "x.toml"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}
