//! [`PolicySet::explain`]: per route and per client, the effective stack in order, every
//! value set and where it came from.

use serde_json::{Map, Value, json};

use crate::build::Effective;
use crate::schema::{CLIENT_SECTIONS, SERVER_SECTIONS};
use crate::set::PolicySet;

impl PolicySet {
    /// The effective stacks as JSON:
    ///
    /// ```json
    /// { "routes": [ { "name": "pay", "at": "routes[0]", "match": "path /pay", "policy": "payments",
    ///     "stack": [ "rejections",
    ///                { "layer": "rate_limit", "settings": { "quotas": { "value": [...], "from": "policy payments" } } },
    ///                { "layer": "timeout", "settings": { "timeout": { "value": "2s", "from": "route" } } },
    ///                "handler" ] } ],
    ///   "clients": [ ... ], "warnings": [ "routes[0].idempotency: ..." ] }
    /// ```
    ///
    /// `from` is `default` (the file's `defaults`), `policy NAME` or `route`; a field no one
    /// set keeps the pattern crate's documented default and is not listed. The fallback is
    /// the last route.
    pub fn explain(&self) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut stack = vec![Value::from("rejections")];
                stack.extend(layers(&r.effective, &SERVER_SECTIONS));
                stack.push(Value::from("handler"));
                json!({
                    "name": r.name,
                    "at": r.at,
                    "match": r.matcher.to_string(),
                    "policy": r.policy,
                    "stack": stack,
                })
            })
            .collect();
        let clients: Vec<Value> = self
            .clients
            .iter()
            .map(|c| {
                let mut stack = layers(&c.effective, &CLIENT_SECTIONS);
                stack.push(Value::from("transport"));
                json!({
                    "name": c.name,
                    "at": c.at,
                    "host": c.host,
                    "path_prefix": c.path_prefix,
                    "policy": c.policy,
                    "stack": stack,
                })
            })
            .collect();
        json!({
            "routes": routes,
            "clients": clients,
            "warnings": self.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}

fn layers(eff: &Effective, order: &[&str]) -> Vec<Value> {
    order
        .iter()
        .filter_map(|&name| {
            let m = eff.get(name)?;
            let settings = match &m.value {
                Value::Object(fields) => fields
                    .iter()
                    .map(|(k, v)| {
                        let from = m.origin(k).map(ToString::to_string);
                        (k.clone(), json!({ "value": v, "from": from }))
                    })
                    .collect::<Map<_, _>>(),
                other => Map::from_iter([(
                    "flag".to_owned(),
                    json!({ "value": other, "from": m.origin("").map(ToString::to_string) }),
                )]),
            };
            Some(json!({ "layer": name, "settings": settings }))
        })
        .collect()
}
