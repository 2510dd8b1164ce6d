//! `palisade-ratelimit-service check FILE…` and a bad `--config`: exit status 2 and every
//! problem with its file and field path, before binding anything.

use std::process::Command;

use crate::support::{BIN, TempDir};

const BAD: &str = "
domain: edge
descriptors:
  - key: user
    rate_limit: {unit: fortnight, requests_per_unit: 3}
  - key: ''
  - key: path
    rate_limit: {unit: minute}
  - key: ip
    rate_limit: {unlimited: true, unit: second}
  - key: tenant
    descriptors:
      - key: user
        rate_limit: {unit: year, requests_per_unit: 1}
";

#[test]
fn check_exits_2_with_every_problem_and_its_path() {
    let dir = TempDir::new();
    let bad = dir.0.join("bad.yaml");
    std::fs::write(&bad, BAD).unwrap();
    let typo = dir.0.join("typo.yaml");
    std::fs::write(
        &typo,
        "domain: x\ndescriptors:\n  - key: a\n    ratelimit: {}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(&bad)
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("invalid configuration (6 problems):"),
        "{err}"
    );
    for p in [
        "bad.yaml: invalid configuration `descriptors[0].rate_limit.unit`: unknown unit `fortnight`",
        "bad.yaml: invalid configuration `descriptors[1].key`: is required",
        "bad.yaml: invalid configuration `descriptors[2].rate_limit.requests_per_unit`: is required",
        "bad.yaml: invalid configuration `descriptors[3].rate_limit.unit`: must not be set when `unlimited` is true",
        "bad.yaml: invalid configuration `descriptors[4].descriptors[0].rate_limit.unit`: `year` is not supported",
        "typo.yaml: invalid configuration `descriptors[0].ratelimit`: unknown field `ratelimit`",
    ] {
        assert!(err.contains(p), "missing {p:?} in:\n{err}");
    }
    // The same for --config: nothing is served.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());

    let good = dir.0.join("good.yaml");
    std::fs::write(&good, "domain: x\ndescriptors:\n  - key: a\n    rate_limit: {unit: Second, requests_per_unit: 1}\n").unwrap();
    let out = Command::new(BIN).arg("check").arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok: 1 domain\n");
}
