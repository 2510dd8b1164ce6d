//! The flag gate: 404 while off, after the rate limit (which counts gated requests).

use crate::support;

use palisade_policy::{Format, Loader, PolicyHandle, PolicySet};
use palisade_toggle::{FlagSet, StaticProvider};
use support::Server;

const FLAGS: &str = r#"{"flags": {
    "beta": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
    "live": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
}}"#;

const FILE: &str = r#"
[[routes]]
match = { path = "/beta" }
gate = "beta"
rate_limit = { quotas = [{ limit = 2, window = "1h" }] }
[[routes]]
match = { path = "/live" }
gate = "live"
[fallback]
"#;

fn loader() -> Loader {
    Loader::new().flags(StaticProvider::new(FlagSet::from_json(FLAGS).unwrap()))
}

#[tokio::test(start_paused = true)]
async fn a_gated_route_answers_404_while_off_and_still_spends_quota() {
    let set = loader().load_str(FILE, Format::Toml).unwrap();
    let s = Server::new(PolicyHandle::new(set));
    assert_eq!(s.status("/beta").await, 404);
    assert_eq!(s.status("/beta").await, 404);
    assert_eq!(
        s.status("/beta").await,
        429,
        "the rate limit sits outside the gate"
    );
    assert_eq!(s.status("/live").await, 200);
    assert_eq!(s.runs(), 1);
}

#[test]
fn a_gate_needs_a_provider_and_a_known_flag() {
    let err = PolicySet::from_toml(FILE).unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "routes[0].gate: a gated route needs a flag provider (`Loader::flags`)"
    );
    let err = loader()
        .load_str("[fallback]\ngate = \"nope\"\n", Format::Toml)
        .unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "fallback.gate: no flag `nope` in the flag provider"
    );
}
