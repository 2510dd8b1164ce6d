//! The policy file's JSON Schema, generated from the types (feature `schema`): each section
//! is its pattern crate's config type, so the schema cannot drift from what is accepted.
//!
//! The checked-in copy is `crates/palisade-policy/palisade-policy.schema.json`; a test fails
//! when it differs from [`json_schema()`]. It is generated with every optional section on (for
//! instance the rate limit's `redis` table): regenerate it with
//! `PALISADE_BLESS=1 cargo test --workspace --all-features --test policy schema::`.
//! Point an editor at it: `#:schema ./palisade-policy.schema.json` on the first line of a
//! TOML file (taplo, Even Better TOML), `"$schema"` in JSON, or
//! `# yaml-language-server: $schema=…` in YAML.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use crate::policy::Policy;

/// A policy file (TOML, JSON or YAML). Routes are tried in order, the first match wins; the
/// `fallback` takes every request no route matches. Each route, client and the fallback
/// inherits field by field: its own sections > its named `policy` > `defaults`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, title = "Palisade policy file")]
#[allow(dead_code)]
struct PolicyFile {
    /// Sections every route, client and the fallback inherit.
    defaults: Option<Policy>,
    /// Named policies, referenced by `policy = "NAME"`.
    policies: Option<BTreeMap<String, Policy>>,
    /// Server routes, first match wins.
    routes: Option<Vec<RouteEntry>>,
    /// The policy of every request no route matches (required; `{}` means no layers).
    fallback: FallbackEntry,
    /// Outbound policies per upstream (host, or host + path prefix).
    clients: Option<Vec<ClientEntry>>,
    /// `palisade-gateway`: the proxy's listeners (address, limits); checked by the gateway.
    listeners: Option<Vec<Value>>,
    /// `palisade-gateway`: named upstream groups (endpoints, load balancing, health checks,
    /// outlier ejection); checked by the gateway.
    upstreams: Option<BTreeMap<String, Value>>,
    /// `palisade-gateway`: the admin listener (address); checked by the gateway.
    admin: Option<Value>,
}

/// A server route.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct RouteEntry {
    /// Unique name: the key under which state (breaker, buckets, slots) survives a reload.
    name: Option<String>,
    /// Which requests the route takes: every condition must hold.
    #[schemars(rename = "match")]
    matcher: Match,
    /// A named policy this route inherits from.
    policy: Option<String>,
    /// `palisade-gateway`: where the route forwards (upstream, rewrites, headers, body
    /// limit); checked by the gateway, ignored by the library.
    forward: Option<Value>,
    #[schemars(flatten)]
    sections: Policy,
}

/// The fallback route.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct FallbackEntry {
    /// A named policy the fallback inherits from.
    policy: Option<String>,
    /// `palisade-gateway`: where the route forwards (upstream, rewrites, headers, body
    /// limit); checked by the gateway, ignored by the library.
    forward: Option<Value>,
    #[schemars(flatten)]
    sections: Policy,
}

/// An outbound policy for one upstream.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct ClientEntry {
    /// Unique name (default: host + path prefix).
    name: Option<String>,
    /// The upstream host; `*.example.com` matches its subdomains.
    host: String,
    /// Only requests under this path prefix (starts with `/`).
    path_prefix: Option<String>,
    /// A named policy this client inherits from.
    policy: Option<String>,
    #[schemars(flatten)]
    sections: Policy,
}

/// A route's `match` table (see the `matcher` module).
struct Match;

impl JsonSchema for Match {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Match".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let me = g.subschema_for::<Match>();
        let text = |d: &str| json!({ "type": "string", "minLength": 1, "description": d });
        let path = |d: &str| json!({ "type": "string", "pattern": "^/", "description": d });
        json_schema!({
            "description": "Conditions that must all hold (at least one).",
            "type": "object",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": {
                "method": {
                    "description": "One method or a list of methods.",
                    "anyOf": [
                        { "type": "string", "minLength": 1 },
                        { "type": "array", "items": { "type": "string", "minLength": 1 }, "minItems": 1 }
                    ]
                },
                "path": path("A path template in axum's syntax: `/orders/{id}`, `/files/{*rest}`."),
                "prefix": path("A path prefix on segment boundaries: `/api` matches `/api/x`, not `/apix`."),
                "glob": path("A path glob: `*` within a segment, `**` across segments."),
                "host": text("The host, port ignored; `*.example.com` matches its subdomains."),
                "header": {
                    "description": "A header is present (its name), or has exactly `value`.",
                    "anyOf": [
                        { "type": "string", "minLength": 1 },
                        {
                            "type": "object",
                            "required": ["name"],
                            "additionalProperties": false,
                            "properties": { "name": { "type": "string" }, "value": { "type": "string" } }
                        }
                    ]
                },
                "all": { "description": "Every condition holds.", "type": "array", "items": me.clone() },
                "any": { "description": "At least one condition holds.", "type": "array", "items": me.clone() },
                "not": me
            }
        })
    }
}

/// The policy file's JSON Schema (draft 2020-12).
pub fn json_schema() -> Value {
    let mut g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = g.root_schema_for::<PolicyFile>();
    let mut v = schema.to_value();
    strip_null(&mut v);
    v
}

/// No file format writes `null` for a missing value (TOML cannot): the schema says "absent".
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(types)) = o.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let t = types.pop().expect("one");
                    o.insert("type".into(), t);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(alts)) = o.get_mut(key) {
                    alts.retain(|a| a.get("type") != Some(&Value::from("null")));
                    if alts.len() == 1 {
                        let only = alts.pop().expect("one");
                        o.remove(key);
                        if let Value::Object(fields) = only {
                            for (k, f) in fields {
                                o.entry(k).or_insert(f);
                            }
                        }
                    }
                }
            }
            o.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_names_every_top_level_key_and_section_the_reader_knows() {
        let s = json_schema();
        let mut top: Vec<&str> = s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        top.sort_unstable();
        let mut known = crate::schema::TOP.to_vec();
        known.sort_unstable();
        assert_eq!(
            top, known,
            "schema::TOP and PolicyFile must list the same keys"
        );
        let policy = &s["$defs"]["Policy"]["properties"];
        let mut sections: Vec<&str> = policy
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        sections.sort_unstable();
        let mut known = crate::schema::SECTIONS.to_vec();
        known.sort_unstable();
        assert_eq!(
            sections, known,
            "schema::SECTIONS and Policy must list the same sections"
        );
    }
}
