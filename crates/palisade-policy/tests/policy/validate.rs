//! A bad file is rejected with every problem, each with its full field path.

use palisade_policy::PolicySet;

const BAD: &str = r#"
[defaults]
timeout = { timeout = "0s" }

[policies.strict]
breaker = { failure_rate_threshold = 120.0 }

[policies.unused]
bulkhead = { max_concurrent = 0 }

[[routes]]
match = { path = "orders" }

[[routes]]
match = { path = "/a" }
policy = "strict"

[[routes]]
match = { path = "/b" }
policy = "strict"
rate_limit = { quotas = [{ limit = 0 }] }

[[routes]]
match = { path = "/c", method = "NOT A METHOD", nope = 1 }
policy = "missing"
tiemout = { timeout = "1s" }

[[routes]]
match = { path = "/d" }
breaker = { failure_rate_threshold = 120.0 }
timeout = { timout = "1s" }
"#;

#[test]
fn every_problem_is_reported_with_its_path() {
    let err = PolicySet::from_toml(BAD).unwrap_err();
    let got: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    let want = [
        "routes[0].match.path: `orders` must start with `/`",
        "routes[3].match.method: `NOT A METHOD` is not an HTTP method",
        "routes[3].match.nope: unknown condition `nope` (known: method, path, prefix, glob, host, header, all, any, not)",
        "routes[3].policy: no policy named `missing` (defined: strict, unused)",
        "routes[3].tiemout: unknown section (known: rate_limit, gate, timeout, idempotency, breaker, bulkhead, retry, attempt_timeout, fault, cache)",
        "fallback: is required: the policy of every request no route matches (an empty table means no layers)",
        "defaults.timeout.timeout: must be between 1ms and 86400s (got 0ns)",
        "policies.strict.breaker.failure_rate_threshold: must be a percentage in (0, 100] (got 120)",
        "routes[2].rate_limit.quotas[0].limit: must be at least 1",
        "routes[4].timeout.timout: unknown field `timout`, expected one of `name`, `timeout`, `honour_grpc_timeout`, `deadline_header`, `insert_deadline`, `outbound`",
        "routes[4].breaker.failure_rate_threshold: must be a percentage in (0, 100] (got 120)",
        "policies.unused.bulkhead.max_concurrent: must be between 1 and 1000000 (got 0)",
    ];
    assert_eq!(got, want, "\n{err}");
    assert!(
        err.to_string()
            .starts_with("invalid policy file (12 problems):\n  routes[0].match.path")
    );
}

#[test]
fn syntax_errors_name_the_file_position() {
    let err = PolicySet::from_toml("routes = [").unwrap_err();
    assert_eq!(err.problems().len(), 1);
    assert_eq!(err.problems()[0].path, "<file>");
    let err = PolicySet::from_json("{\"fallback\": {}, \"routes\": 3}").unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "routes: must be a list of route tables ([[routes]])"
    );
}

#[test]
fn json_is_the_same_schema() {
    let set = PolicySet::from_json(
        r#"{"routes":[{"name":"pay","match":{"path":"/pay"},"timeout":{"timeout":"2s"}}],"fallback":{}}"#,
    )
    .unwrap();
    assert_eq!(set.route_names(), ["pay", "fallback"]);
}

#[cfg(feature = "yaml")]
#[test]
fn yaml_is_the_same_schema() {
    let set = PolicySet::from_yaml(
        "routes:\n  - name: pay\n    match: { path: /pay }\n    timeout: { timeout: 2s }\nfallback: {}\n",
    )
    .unwrap();
    assert_eq!(set.route_names(), ["pay", "fallback"]);
    let err =
        PolicySet::from_yaml("routes:\n  - match: { path: pay }\nfallback: {}\n").unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "routes[0].match.path: `pay` must start with `/`"
    );
}
