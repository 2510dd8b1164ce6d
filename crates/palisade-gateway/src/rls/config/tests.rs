//! Tests of the config files: the reference format, every problem with its path.

use super::*;

fn check(text: &str) -> Result<Domains, Vec<String>> {
    let mut d = Domains::default();
    let mut problems = Vec::new();
    load(text, &mut d, &mut problems);
    if problems.is_empty() {
        Ok(d)
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

#[test]
fn reads_the_reference_format() {
    let d = check(
        "domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit:\n      unit: SECOND\n      requests_per_unit: 10\n  - key: tenant\n    value: a\n    shadow_mode: true\n    rate_limit: {unit: minute, requests_per_unit: 0}\n    descriptors:\n      - key: user\n        detailed_metric: true\n        rate_limit: {unlimited: true}\n",
    )
    .unwrap();
    assert_eq!(d.domains.len(), 1);
    assert!(d.domains.contains_key("edge"));
}

#[test]
fn every_problem_names_its_field() {
    let e = check(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n  - key: ''\n  - key: b\n    rate_limit: {unit: year, requests_per_unit: 1}\n  - key: c\n    descriptors:\n      - key: d\n        rate_limit: {unit: hour}\n  - key: e\n    rate_limit: {unlimited: true, unit: second}\n  - key: a\n  - key: f\n    value: 'x*y'\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        [
            "invalid configuration `descriptors[0].rate_limit.unit`: unknown unit `fortnight`: one of second, minute, hour, day, week, month",
            "invalid configuration `descriptors[1].key`: is required and must not be empty",
            "invalid configuration `descriptors[2].rate_limit.unit`: `year` is not supported: Palisade's GCRA keeps windows up to 31 days (second, minute, hour, day, week, month)",
            "invalid configuration `descriptors[3].descriptors[0].rate_limit.requests_per_unit`: is required (0 refuses every request)",
            "invalid configuration `descriptors[4].rate_limit.unit`: must not be set when `unlimited` is true",
            "invalid configuration `descriptors[6].value`: `*` is a wildcard only as the value's last character",
        ],
    );
}

#[test]
fn unknown_fields_and_types_are_refused_with_their_path() {
    let e = check("domain: edge\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, burst: 3}\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "invalid configuration `descriptors[0].rate_limit.burst`: unknown field `burst`"
        ),
        "{e:?}"
    );
    let e = check("domain: edge\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: -1}\n").unwrap_err();
    assert!(
        e[0].contains("descriptors[0].rate_limit.requests_per_unit"),
        "{e:?}"
    );
    let e = check("descriptors: []\n").unwrap_err();
    assert_eq!(
        e,
        ["invalid configuration `domain`: is required and must not be empty"]
    );
}

#[test]
fn duplicates_are_refused() {
    let mut d = Domains::default();
    let mut problems = Vec::new();
    load(
        "domain: edge\ndescriptors:\n  - key: a\n    value: x\n  - key: a\n    value: x\n",
        &mut d,
        &mut problems,
    );
    load("domain: edge\n", &mut d, &mut problems);
    let p: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        p,
        [
            "invalid configuration `descriptors[1]`: duplicate descriptor `a` = `x`",
            "invalid configuration `domain`: `edge` is already defined by another file",
        ]
    );
}

#[test]
fn units_map_to_envoy_numbers_and_windows() {
    for n in [1, 2, 3, 4, 5, 7] {
        assert_eq!(Unit::from_proto(n).unwrap().proto(), n);
    }
    assert!(Unit::from_proto(0).is_err());
    assert!(Unit::from_proto(6).unwrap_err().contains("year"));
    assert_eq!(
        Unit::parse("Month").unwrap().window(),
        Duration::from_secs(2_592_000)
    );
    assert_eq!(default_name("path", Some("/caf\u{e9}")), "path_/caf_");
}
