//! The checked-in JSON Schema is the one generated from the types.
#![cfg(feature = "schema")]

const CHECKED_IN: &str = include_str!("../../palisade-policy.schema.json");

#[test]
fn the_checked_in_schema_is_up_to_date() {
    let generated =
        serde_json::to_string_pretty(&palisade_policy::json_schema::json_schema()).unwrap() + "\n";
    if std::env::var_os("PALISADE_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/palisade-policy.schema.json");
        std::fs::write(path, &generated).unwrap();
        return;
    }
    assert!(
        generated == CHECKED_IN,
        "crates/palisade-policy/palisade-policy.schema.json is stale; regenerate it with every \
         optional section on (the workspace's features, as CI builds it):\n  \
         PALISADE_BLESS=1 cargo test --workspace --all-features --test policy schema::"
    );
}

#[test]
fn the_schema_describes_sections_with_the_pattern_crates_fields() {
    let s = palisade_policy::json_schema::json_schema();
    let defs = &s["$defs"];
    let timeout = &defs["TimeoutConfig"]["properties"];
    assert_eq!(
        timeout["timeout"]["type"], "string",
        "durations are strings: \"2s\""
    );
    assert!(defs["BreakerConfig"]["properties"]["failure_rate_threshold"].is_object());
    assert_eq!(defs["TimeoutConfig"]["additionalProperties"], false);
    assert_eq!(s["required"], serde_json::json!(["fallback"]));
    let route = &defs["RouteEntry"];
    assert!(route["properties"]["match"].is_object());
    assert!(
        route["properties"]["breaker"].is_object(),
        "sections are flattened into routes"
    );
    assert_eq!(route["required"], serde_json::json!(["match"]));
    assert!(
        route["additionalProperties"] == false || route["unevaluatedProperties"] == false,
        "a typo in a route is flagged: {route}"
    );
}

#[cfg(feature = "toml")]
#[test]
fn the_example_file_uses_only_keys_the_schema_knows() {
    let text = include_str!("../../examples/policy.toml");
    let file: serde_json::Value = toml::from_str(text).unwrap();
    let s = palisade_policy::json_schema::json_schema();
    for key in file.as_object().unwrap().keys() {
        assert!(s["properties"].get(key).is_some(), "{key}");
    }
}
