//! Inheritance, field by field: route > named policy > defaults.
//!
//! Sections are merged on the value level, before they are read into each pattern crate's
//! typed config, so the same code serves every section: for each section, the top-level
//! fields of the more specific object replace those of the less specific one, one by one;
//! a nested table (`window = { count = 20 }`) is one field and is replaced whole. A section
//! set to `false` removes the layer inherited so far (`breaker = false` on a route whose
//! policy has one); a later, more specific object starts again from nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The file's `defaults`.
    Default,
    /// The named policy (`policies.NAME`).
    Policy(String),
    /// The route's (or client's, or fallback's) own section.
    Route,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Policy(name) => write!(f, "policy {name}"),
            Self::Route => f.write_str("route"),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One section after inheritance: the merged value and the origin of each of its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merged value (an object for layer sections, a string for `gate`).
    pub value: Value,
    /// For objects: the origin of each top-level field. For other values: one entry, `""`.
    pub origins: BTreeMap<String, Origin>,
}

impl Merged {
    /// The origin of `field` (or of the whole value, for non-objects).
    pub fn origin(&self, field: &str) -> Option<&Origin> {
        self.origins.get(field).or_else(|| self.origins.get(""))
    }
}

/// Merges one section over its layers, least specific first. `None`: the section is absent
/// (never set, or switched off with `false` by the most specific layer that mentions it).
pub fn merge<'a>(layers: impl IntoIterator<Item = (Origin, Option<&'a Value>)>) -> Option<Merged> {
    let mut out: Option<Merged> = None;
    for (origin, value) in layers {
        let Some(value) = value else { continue };
        match value {
            Value::Bool(false) | Value::Null => out = None,
            Value::Object(fields) => {
                let merged = out.get_or_insert_with(|| Merged {
                    value: Value::Object(Map::new()),
                    origins: BTreeMap::new(),
                });
                if !merged.value.is_object() {
                    merged.value = Value::Object(Map::new());
                    merged.origins.clear();
                }
                let Value::Object(into) = &mut merged.value else {
                    unreachable!("made an object above")
                };
                for (k, v) in fields {
                    into.insert(k.clone(), v.clone());
                    merged.origins.insert(k.clone(), origin.clone());
                }
            }
            other => {
                out = Some(Merged {
                    value: other.clone(),
                    origins: BTreeMap::from([(String::new(), origin.clone())]),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_by_field_route_over_policy_over_default() {
        let d = json!({"timeout": "5s", "honour_grpc_timeout": false});
        let p = json!({"timeout": "2s", "deadline_header": "x-budget"});
        let r = json!({"deadline_header": "x-ms"});
        let m = merge([
            (Origin::Default, Some(&d)),
            (Origin::Policy("pay".into()), Some(&p)),
            (Origin::Route, Some(&r)),
        ])
        .unwrap();
        assert_eq!(
            m.value,
            json!({"timeout": "2s", "honour_grpc_timeout": false, "deadline_header": "x-ms"})
        );
        assert_eq!(m.origin("timeout"), Some(&Origin::Policy("pay".into())));
        assert_eq!(m.origin("honour_grpc_timeout"), Some(&Origin::Default));
        assert_eq!(m.origin("deadline_header"), Some(&Origin::Route));
    }

    #[test]
    fn false_switches_a_section_off_and_a_later_object_starts_fresh() {
        let d = json!({"minimum_calls": 5, "window": {"count": 10}});
        let off = json!(false);
        assert_eq!(
            merge([(Origin::Default, Some(&d)), (Origin::Route, Some(&off))]),
            None
        );
        let r = json!({"minimum_calls": 2});
        let m = merge([
            (Origin::Default, Some(&d)),
            (Origin::Policy("x".into()), Some(&off)),
            (Origin::Route, Some(&r)),
        ])
        .unwrap();
        assert_eq!(m.value, json!({"minimum_calls": 2}));
        assert_eq!(merge([(Origin::Default, None)]), None);
    }

    #[test]
    fn nested_tables_are_replaced_whole() {
        let d = json!({"window": {"time": 30}});
        let r = json!({"window": {"count": 20}});
        let m = merge([(Origin::Default, Some(&d)), (Origin::Route, Some(&r))]).unwrap();
        assert_eq!(m.value, json!({"window": {"count": 20}}));
    }
}
