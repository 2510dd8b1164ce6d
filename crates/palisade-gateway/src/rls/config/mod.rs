//! The rate-limit configuration files: envoyproxy/ratelimit's YAML, read and checked once
//! at load, every problem with its field path.
//!
//! ```yaml
//! domain: edge                    # one domain per file
//! descriptors:
//!   - key: remote_address         # no value: every value, each with its own bucket
//!     rate_limit: { unit: second, requests_per_unit: 10 }
//!   - key: path
//!     value: /login               # exact value, matched before the key-only entry
//!     rate_limit: { unit: minute, requests_per_unit: 5, name: login }
//!     shadow_mode: true           # decided and reported, never refused
//!   - key: tenant
//!     value: "internal-*"         # a trailing `*`: any value with this prefix
//!     rate_limit: { unlimited: true }
//!     descriptors:                # nested: matched by the descriptor's next entry
//!       - key: user
//!         rate_limit: { unit: hour, requests_per_unit: 1000 }
//! ```
//!
//! Units: `second`, `minute`, `hour`, `day`, `week`, `month` (30 days), case-insensitive.
//! `year` is refused: Palisade's GCRA keeps windows up to 31 days. `detailed_metric` is
//! accepted and has no effect; `replaces` is refused (not supported).

use std::collections::HashMap;
use std::time::Duration;

use palisade_core::ConfigError;
use palisade_ratelimit::{Quota, QuotaSet};
use serde::Deserialize;

use super::descriptors::{Level, Limit, Node};

/// Bounds that keep a config file, and the work one request can cause, small.
pub(crate) const MAX_DEPTH: usize = 16;
/// Longest key or value in a config file (bytes).
pub(crate) const MAX_TEXT: usize = 256;
/// Most descriptors in one file, all levels together.
pub(crate) const MAX_DESCRIPTORS: usize = 10_000;

/// One file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    descriptors: Vec<DescriptorConfig>,
}

/// One descriptor entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptorConfig {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    shadow_mode: bool,
    /// Per-value metrics in the reference service; accepted, no effect here.
    #[serde(default)]
    #[allow(dead_code)]
    detailed_metric: bool,
    #[serde(default)]
    descriptors: Vec<DescriptorConfig>,
}

/// A descriptor's limit as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitConfig {
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    requests_per_unit: Option<u32>,
    #[serde(default)]
    unlimited: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    replaces: Option<serde_yaml_ng::Value>,
}

/// A time unit of Envoy's `RateLimitResponse.RateLimit.Unit` (the same numbers as
/// `envoy.type.v3.RateLimitUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Unit {
    /// Parses a unit name, case-insensitively.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "second" => Self::Second,
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "year" => {
                return Err(
                    "`year` is not supported: Palisade's GCRA keeps windows up to 31 days \
                     (second, minute, hour, day, week, month)"
                        .into(),
                );
            }
            _ => {
                return Err(format!(
                    "unknown unit `{s}`: one of second, minute, hour, day, week, month"
                ));
            }
        })
    }

    /// From the protobuf enum's number (0 and `YEAR` are refused).
    pub(crate) fn from_proto(n: i32) -> Result<Self, String> {
        Ok(match n {
            1 => Self::Second,
            2 => Self::Minute,
            3 => Self::Hour,
            4 => Self::Day,
            5 => Self::Month,
            7 => Self::Week,
            6 => return Self::parse("year"),
            0 => return Err("the unit is UNKNOWN".into()),
            _ => return Err(format!("unknown unit number {n}")),
        })
    }

    /// The protobuf enum's number.
    pub(crate) fn proto(self) -> i32 {
        match self {
            Self::Second => 1,
            Self::Minute => 2,
            Self::Hour => 3,
            Self::Day => 4,
            Self::Month => 5,
            Self::Week => 7,
        }
    }

    /// The lowercase name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The window (a month is 30 days, as in the reference service).
    pub(crate) fn window(self) -> Duration {
        Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Week => 7 * 86_400,
            Self::Month => 30 * 86_400,
        })
    }
}

/// Builds the limit of `requests_per_unit` per `unit`, named `name` (the policy name in
/// the `RateLimit` headers and the last segment of its Redis keys).
pub(crate) fn limit(
    name: &str,
    requests_per_unit: u32,
    unit: Unit,
    shadow: bool,
) -> Result<Limit, ConfigError> {
    let quota = if requests_per_unit == 0 {
        None
    } else {
        let q = Quota::new(name, requests_per_unit, unit.window())?;
        Some(QuotaSet::new([q])?)
    };
    Ok(Limit::Limited {
        name: name.into(),
        requests_per_unit,
        unit,
        shadow,
        quota,
    })
}

/// The checked configuration: one descriptor tree per domain.
#[derive(Debug, Default)]
pub(crate) struct Domains {
    pub(crate) domains: HashMap<String, Node>,
}

/// Reads one file's text (`source` names it in errors) into `into`; every problem is
/// pushed to `problems` with its field path.
pub(crate) fn load(text: &str, into: &mut Domains, problems: &mut Vec<ConfigError>) {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let file: FileConfig = match serde_path_to_error::deserialize(de) {
        Ok(f) => f,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let msg = e.into_inner().to_string();
            // serde_yaml_ng starts its message with its own (shorter) path: drop it.
            let msg = match msg.split_once(": ") {
                Some((head, rest)) if !head.contains(' ') && path.starts_with(head) => {
                    rest.to_owned()
                }
                _ => msg,
            };
            problems.push(ConfigError::new(path, msg));
            return;
        }
    };
    if file.domain.is_empty() {
        problems.push(ConfigError::new(
            "domain",
            "is required and must not be empty",
        ));
        return;
    }
    if into.domains.contains_key(&file.domain) {
        problems.push(ConfigError::new(
            "domain",
            format!("`{}` is already defined by another file", file.domain),
        ));
        return;
    }
    let mut count = 0;
    let node = level(&file.descriptors, "descriptors", 1, &mut count, problems);
    if count > MAX_DESCRIPTORS {
        problems.push(ConfigError::new(
            "descriptors",
            format!("at most {MAX_DESCRIPTORS} descriptors per file (got {count})"),
        ));
    }
    into.domains.insert(file.domain, node);
}

/// Checks one level of descriptors into a node.
fn level(
    list: &[DescriptorConfig],
    at: &str,
    depth: usize,
    count: &mut usize,
    problems: &mut Vec<ConfigError>,
) -> Node {
    let mut node = Node::default();
    if depth > MAX_DEPTH {
        problems.push(ConfigError::new(
            at.to_owned(),
            format!("descriptors nest at most {MAX_DEPTH} levels deep"),
        ));
        return node;
    }
    for (i, d) in list.iter().enumerate() {
        *count += 1;
        let here = format!("{at}[{i}]");
        let mut ok = true;
        if d.key.is_empty() {
            problems.push(ConfigError::new(
                format!("{here}.key"),
                "is required and must not be empty",
            ));
            ok = false;
        }
        if d.key.len() > MAX_TEXT {
            problems.push(ConfigError::new(
                format!("{here}.key"),
                format!("at most {MAX_TEXT} bytes"),
            ));
            ok = false;
        }
        let value = d.value.as_deref().filter(|v| !v.is_empty());
        if let Some(v) = value {
            if v.len() > MAX_TEXT {
                problems.push(ConfigError::new(
                    format!("{here}.value"),
                    format!("at most {MAX_TEXT} bytes"),
                ));
                ok = false;
            }
            if v.trim_end_matches('*').contains('*') || v.ends_with("**") {
                problems.push(ConfigError::new(
                    format!("{here}.value"),
                    "`*` is a wildcard only as the value's last character",
                ));
                ok = false;
            }
        }
        let limit = d
            .rate_limit
            .as_ref()
            .and_then(|rl| rate_limit(rl, d, &here, problems));
        if d.rate_limit.as_ref().is_some_and(|rl| !rl.unlimited) && limit.is_none() {
            ok = false;
        }
        let children = level(
            &d.descriptors,
            &format!("{here}.descriptors"),
            depth + 1,
            count,
            problems,
        );
        if !ok {
            continue;
        }
        let level = Level {
            limit,
            next: children,
        };
        if let Err(problem) = node.insert(&d.key, value, level) {
            problems.push(ConfigError::new(here, problem));
        }
    }
    node
}

/// Checks a descriptor's `rate_limit`.
fn rate_limit(
    rl: &RateLimitConfig,
    d: &DescriptorConfig,
    here: &str,
    problems: &mut Vec<ConfigError>,
) -> Option<Limit> {
    let at = format!("{here}.rate_limit");
    if rl.replaces.is_some() {
        problems.push(ConfigError::new(
            format!("{at}.replaces"),
            "is not supported",
        ));
        return None;
    }
    let unit = rl.unit.as_deref().filter(|u| !u.is_empty());
    if rl.unlimited {
        if unit.is_some() {
            problems.push(ConfigError::new(
                format!("{at}.unit"),
                "must not be set when `unlimited` is true",
            ));
        }
        return Some(Limit::Unlimited);
    }
    let Some(unit) = unit else {
        problems.push(ConfigError::new(
            format!("{at}.unit"),
            "is required: second, minute, hour, day, week or month (or `unlimited: true`)",
        ));
        return None;
    };
    let unit = match Unit::parse(unit) {
        Ok(u) => u,
        Err(e) => {
            problems.push(ConfigError::new(format!("{at}.unit"), e));
            return None;
        }
    };
    let Some(rpu) = rl.requests_per_unit else {
        problems.push(ConfigError::new(
            format!("{at}.requests_per_unit"),
            "is required (0 refuses every request)",
        ));
        return None;
    };
    let name = match &rl.name {
        Some(n) => n.clone(),
        None => default_name(&d.key, d.value.as_deref()),
    };
    match limit(&name, rpu, unit, d.shadow_mode) {
        Ok(l) => Some(l),
        Err(e) => {
            let field = match e.field() {
                "name" => "name",
                "limit" => "requests_per_unit",
                _ => "unit",
            };
            problems.push(ConfigError::new(
                format!("{at}.{field}"),
                e.problem().to_owned(),
            ));
            None
        }
    }
}

/// The policy name of a limit without a `name`: `key` or `key_value` (as the reference
/// service names its stats), non-printable bytes as `_`, cut at 64 bytes.
fn default_name(key: &str, value: Option<&str>) -> String {
    let mut s = key.to_owned();
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        s.push('_');
        s.push_str(v);
    }
    let mut out: String = s
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
        .collect();
    out.truncate(64);
    out
}

#[cfg(test)]
mod tests;
