//! The descriptor tree of one domain and the lookup of a request's descriptor in it, as in
//! envoyproxy/ratelimit: for each entry in turn, the exact `key` + `value` first, then a
//! `value` ending in `*` whose prefix the value starts with (in file order), then the `key`
//! with no value (any value); the descriptor's limit is the one of the level its *last*
//! entry matched. A descriptor with more entries than the matching levels, or whose entry
//! matches nothing, has no limit (answered OK).

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use palisade_ratelimit::QuotaSet;

use super::config::Unit;

/// What a matched descriptor is limited to.
#[derive(Debug, Clone)]
pub(crate) enum Limit {
    /// `unlimited: true`: always OK, Redis untouched.
    Unlimited,
    /// `requests_per_unit` per `unit`.
    Limited {
        /// The policy name (headers, Redis key's last segment, `current_limit.name`).
        name: Arc<str>,
        requests_per_unit: u32,
        unit: Unit,
        /// Decided and reported, never refused.
        shadow: bool,
        /// `None` when `requests_per_unit` is 0: every request is over the limit.
        quota: Option<QuotaSet>,
    },
}

/// One configured descriptor: its limit and the level below it.
#[derive(Debug, Default)]
pub(crate) struct Level {
    pub(crate) limit: Option<Limit>,
    pub(crate) next: Node,
}

/// The descriptors configured at one level, by key.
#[derive(Debug, Default)]
pub(crate) struct Node {
    keys: HashMap<String, KeyEntry>,
}

/// The descriptors of one key at one level.
#[derive(Debug, Default)]
struct KeyEntry {
    exact: HashMap<String, Level>,
    /// `value: "prefix*"` entries, in file order.
    prefixes: Vec<(String, Level)>,
    any: Option<Level>,
}

impl Node {
    /// Adds a descriptor; a second one with the same key and value is refused.
    pub(crate) fn insert(
        &mut self,
        key: &str,
        value: Option<&str>,
        level: Level,
    ) -> Result<(), String> {
        let entry = self.keys.entry(key.to_owned()).or_default();
        let dup = || match value {
            Some(v) => format!("duplicate descriptor `{key}` = `{v}`"),
            None => format!("duplicate descriptor `{key}` (no value)"),
        };
        match value {
            None if entry.any.is_some() => return Err(dup()),
            None => entry.any = Some(level),
            Some(v) if v.ends_with('*') => {
                let prefix = v.trim_end_matches('*');
                if entry.prefixes.iter().any(|(p, _)| p == prefix) {
                    return Err(dup());
                }
                entry.prefixes.push((prefix.to_owned(), level));
            }
            Some(v) => {
                if entry.exact.contains_key(v) {
                    return Err(dup());
                }
                entry.exact.insert(v.to_owned(), level);
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, key: &str, value: &str) -> Option<&Level> {
        let e = self.keys.get(key)?;
        e.exact
            .get(value)
            .or_else(|| {
                e.prefixes
                    .iter()
                    .find(|(p, _)| value.starts_with(p.as_str()))
                    .map(|(_, l)| l)
            })
            .or(e.any.as_ref())
    }

    /// The limit of a request descriptor's entries, if any (see the module docs).
    pub(crate) fn find(&self, entries: &[Entry]) -> Option<&Limit> {
        let mut node = self;
        for (i, e) in entries.iter().enumerate() {
            let level = node.get(&e.key, &e.value)?;
            if i + 1 == entries.len() {
                return level.limit.as_ref();
            }
            if level.next.is_empty() {
                return None;
            }
            node = &level.next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{Domains, load};
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<Entry> {
        pairs
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect()
    }

    fn name(l: Option<&Limit>) -> Option<&str> {
        match l? {
            Limit::Unlimited => Some("unlimited"),
            Limit::Limited { name, .. } => Some(name),
        }
    }

    const YAML: &str = "
domain: d
descriptors:
  - key: ip
    rate_limit: {unit: second, requests_per_unit: 1, name: any-ip}
  - key: ip
    value: 10.0.0.1
    rate_limit: {unit: second, requests_per_unit: 5, name: exact-ip}
  - key: ip
    value: '192.168.*'
    rate_limit: {unlimited: true}
  - key: tenant
    value: a
    descriptors:
      - key: user
        rate_limit: {unit: minute, requests_per_unit: 3, name: tenant-a-user}
  - key: path
    rate_limit: {unit: minute, requests_per_unit: 9, name: path}
";

    #[test]
    fn exact_then_prefix_then_key_only() {
        let mut d = Domains::default();
        let mut problems = Vec::new();
        load(YAML, &mut d, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let root = &d.domains["d"];
        let find = |p: &[(&str, &str)]| name(root.find(&entries(p))).map(str::to_owned);
        assert_eq!(find(&[("ip", "10.0.0.1")]).as_deref(), Some("exact-ip"));
        assert_eq!(find(&[("ip", "10.0.0.2")]).as_deref(), Some("any-ip"));
        assert_eq!(find(&[("ip", "192.168.1.1")]).as_deref(), Some("unlimited"));
        assert_eq!(
            find(&[("tenant", "a"), ("user", "u1")]).as_deref(),
            Some("tenant-a-user")
        );
        // The limit is the last entry's: a prefix of a nested descriptor has none.
        assert_eq!(find(&[("tenant", "a")]), None);
        assert_eq!(find(&[("tenant", "b"), ("user", "u1")]), None);
        // More entries than levels: no limit (as the reference service).
        assert_eq!(find(&[("path", "/x"), ("method", "GET")]), None);
        assert_eq!(find(&[("unknown", "x")]), None);
        assert_eq!(find(&[]), None);
    }
}
