//! The file's shape, read from the value tree with every problem collected.
//!
//! ```toml
//! [defaults]                       # inherited by every route, client and the fallback
//! timeout = { timeout = "5s" }
//!
//! [policies.payments]              # named policies, referenced by `policy = "payments"`
//! rate_limit = { key = { type = "header", name = "x-api-key" }, quotas = [{ limit = 5, window = "1m" }] }
//! idempotency = { require_key = true }
//!
//! [[routes]]                       # first match wins
//! name = "pay"                     # optional: the key that keeps state across reloads
//! match = { method = "POST", path = "/orders/{id}/pay" }
//! policy = "payments"
//! timeout = { timeout = "2s" }     # route > policy > defaults, field by field
//!
//! [fallback]                       # mandatory: every request no route matched
//! bulkhead = { max_concurrent = 64 }
//!
//! [[clients]]                      # outbound policies per upstream
//! host = "billing.internal"
//! path_prefix = "/v1"
//! retry = { max_attempts = 3 }
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Problem, join};
use crate::matcher::{self, Matcher};

/// The layer sections a server route may have, in the canonical (outermost first) order.
pub const SERVER_SECTIONS: [&str; 8] = [
    "rate_limit",
    "gate",
    "cache",
    "timeout",
    "idempotency",
    "breaker",
    "bulkhead",
    "fault",
];

/// The layer sections a client may have, in the canonical (outermost first) order.
pub const CLIENT_SECTIONS: [&str; 6] = [
    "timeout",
    "retry",
    "breaker",
    "attempt_timeout",
    "bulkhead",
    "fault",
];

/// Every section name a policy may hold.
pub const SECTIONS: [&str; 10] = [
    "rate_limit",
    "gate",
    "timeout",
    "idempotency",
    "breaker",
    "bulkhead",
    "retry",
    "attempt_timeout",
    "fault",
    "cache",
];

/// A policy's sections, by name, as written.
pub(crate) type Sections = BTreeMap<String, Value>;

/// A route (or the fallback, whose matcher is [`Matcher::Always`]) as written.
#[derive(Debug, Clone)]
pub(crate) struct RawRoute {
    /// Where it is in the file: `routes[2]`, `fallback`, `clients[0]`.
    pub(crate) at: String,
    /// Its name: the `name` key, else the matcher (routes) or host + prefix (clients).
    pub(crate) name: String,
    pub(crate) matcher: Matcher,
    pub(crate) policy: Option<String>,
    pub(crate) sections: Sections,
    /// Clients: the upstream host and optional path prefix.
    pub(crate) upstream: Option<(String, Option<String>)>,
}

/// The whole file as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawFile {
    pub(crate) defaults: Sections,
    pub(crate) policies: BTreeMap<String, Sections>,
    pub(crate) routes: Vec<RawRoute>,
    pub(crate) fallback: Option<RawRoute>,
    pub(crate) clients: Vec<RawRoute>,
}

pub(crate) const TOP: [&str; 8] = [
    "defaults",
    "policies",
    "routes",
    "fallback",
    "clients",
    "listeners",
    "upstreams",
    "admin",
];

/// Top-level sections that configure the `palisade-gateway` binary: the library checks only
/// their shape (the gateway validates their contents), and ignores them otherwise.
pub const GATEWAY_SECTIONS: [&str; 3] = ["listeners", "upstreams", "admin"];

/// The key of a route (or the fallback) that tells the gateway where to forward it; the
/// library ignores it.
pub const FORWARD_KEY: &str = "forward";

/// Reads the file's shape; section contents are checked later, after inheritance.
pub(crate) fn read(root: &Value, problems: &mut Vec<Problem>) -> RawFile {
    let mut file = RawFile::default();
    let Value::Object(top) = root else {
        problems.push(Problem::new(
            "<file>",
            "must be a table with `routes` and `fallback`",
        ));
        return file;
    };
    for key in top.keys().filter(|k| !TOP.contains(&k.as_str())) {
        problems.push(Problem::new(
            key.clone(),
            format!("unknown key (known: {})", TOP.join(", ")),
        ));
    }
    for (key, want_list) in [("listeners", true), ("upstreams", false), ("admin", false)] {
        let ok = match top.get(key) {
            None => true,
            Some(Value::Array(_)) => want_list,
            Some(Value::Object(_)) => !want_list,
            Some(_) => false,
        };
        if !ok {
            let what = if want_list {
                "must be a list of tables ([[listeners]])"
            } else {
                "must be a table"
            };
            problems.push(Problem::new(key, what));
        }
    }
    if let Some(v) = top.get("defaults")
        && let Some(obj) = table(v, "defaults", problems)
    {
        file.defaults = sections(obj, "defaults", &[], problems);
    }
    if let Some(v) = top.get("policies")
        && let Some(obj) = table(v, "policies", problems)
    {
        for (name, p) in obj {
            let at = join("policies", name);
            if let Some(o) = table(p, &at, problems) {
                file.policies
                    .insert(name.clone(), sections(o, &at, &[], problems));
            }
        }
    }
    match top.get("routes") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("routes[{i}]");
                if let Some(r) = route(item, &at, Kind::Route, &file, problems) {
                    file.routes.push(r);
                }
            }
        }
        Some(_) => problems.push(Problem::new(
            "routes",
            "must be a list of route tables ([[routes]])",
        )),
        None => {}
    }
    match top.get("fallback") {
        Some(v) => file.fallback = route(v, "fallback", Kind::Fallback, &file, problems),
        None => problems.push(Problem::new(
            "fallback",
            "is required: the policy of every request no route matches (an empty table means no layers)",
        )),
    }
    match top.get("clients") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("clients[{i}]");
                if let Some(r) = route(item, &at, Kind::Client, &file, problems) {
                    file.clients.push(r);
                }
            }
        }
        Some(_) => problems.push(Problem::new(
            "clients",
            "must be a list of client tables ([[clients]])",
        )),
        None => {}
    }
    let mut seen = BTreeMap::new();
    for r in &file.routes {
        if let Some(first) = seen.insert(r.name.clone(), r.at.clone()) {
            problems.push(Problem::new(
                join(&r.at, "name"),
                format!(
                    "`{}` is also the name of {first}; route names must be unique",
                    r.name
                ),
            ));
        }
    }
    file
}

fn table<'a>(
    v: &'a Value,
    at: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'a Map<String, Value>> {
    if let Value::Object(o) = v {
        Some(o)
    } else {
        problems.push(Problem::new(at, "must be a table"));
        None
    }
}

/// The layer sections of `obj`; keys in `other` belong to the caller.
fn sections(
    obj: &Map<String, Value>,
    at: &str,
    other: &[&str],
    problems: &mut Vec<Problem>,
) -> Sections {
    let mut out = Sections::new();
    for (k, v) in obj {
        if other.contains(&k.as_str()) {
            continue;
        }
        let here = join(at, k);
        if !SECTIONS.contains(&k.as_str()) {
            problems.push(Problem::new(
                here,
                format!("unknown section (known: {})", SECTIONS.join(", ")),
            ));
            continue;
        }
        let ok = match (k.as_str(), v) {
            (_, Value::Bool(false)) => true,
            ("gate", Value::String(s)) => !s.is_empty(),
            ("gate", _) => {
                problems.push(Problem::new(
                    here,
                    "must be the name of a boolean flag, or false",
                ));
                continue;
            }
            (_, Value::Object(_)) => true,
            _ => false,
        };
        if ok {
            out.insert(k.clone(), v.clone());
        } else {
            problems.push(Problem::new(
                here,
                "must be a table of settings, or false to switch the layer off",
            ));
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Route,
    Fallback,
    Client,
}

fn route(
    v: &Value,
    at: &str,
    kind: Kind,
    file: &RawFile,
    problems: &mut Vec<Problem>,
) -> Option<RawRoute> {
    let obj = table(v, at, problems)?;
    let own: &[&str] = match kind {
        Kind::Route => &["name", "match", "policy", FORWARD_KEY],
        Kind::Fallback => &["policy", FORWARD_KEY],
        Kind::Client => &["name", "host", "path_prefix", "policy"],
    };
    let text = |key: &str, problems: &mut Vec<Problem>| match obj.get(key) {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            problems.push(Problem::new(join(at, key), "must be a non-empty string"));
            None
        }
    };
    let name = text("name", problems);
    let (matcher, upstream) = match kind {
        Kind::Fallback => (Matcher::Always, None),
        // A broken or missing matcher stands in as `not(always)` and the route is named by
        // its place, so no follow-on problem (a duplicate name) is reported for it.
        Kind::Route => {
            let m = if let Some(m) = obj.get("match") {
                matcher::parse(m, &join(at, "match"), problems)
            } else {
                problems.push(Problem::new(
                    join(at, "match"),
                    "is required (the `fallback` takes unmatched requests)",
                ));
                None
            };
            (m.unwrap_or(!Matcher::Always), None)
        }
        Kind::Client => {
            let host = text("host", problems);
            let prefix = text("path_prefix", problems);
            if host.is_none() && !obj.contains_key("host") {
                problems.push(Problem::new(
                    join(at, "host"),
                    "is required: the upstream's host",
                ));
            }
            if let Some(p) = &prefix
                && !p.starts_with('/')
            {
                problems.push(Problem::new(
                    join(at, "path_prefix"),
                    format!("`{p}` must start with `/`"),
                ));
            }
            let m = host.as_deref().map_or(Matcher::Always, Matcher::host);
            (m, host.map(|h| (h, prefix)))
        }
    };
    let policy = text("policy", problems);
    if let Some(p) = &policy
        && !file.policies.contains_key(p)
    {
        let known: Vec<&str> = file.policies.keys().map(String::as_str).collect();
        problems.push(Problem::new(
            join(at, "policy"),
            format!(
                "no policy named `{p}` (defined: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let sections = sections(obj, at, own, problems);
    // A route with problems is still returned, so that its sections are checked too (the
    // file is rejected anyway).
    let name = name.unwrap_or_else(|| match (&upstream, kind) {
        (Some((h, Some(p))), _) => format!("{h}{p}"),
        (Some((h, None)), _) => h.clone(),
        (None, Kind::Fallback) => "fallback".into(),
        (None, _) if matcher == !Matcher::Always => at.to_owned(),
        (None, _) => matcher.to_string(),
    });
    Some(RawRoute {
        at: at.to_owned(),
        name,
        matcher,
        policy,
        sections,
        upstream,
    })
}
