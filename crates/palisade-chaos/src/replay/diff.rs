//! [`Difference`]: what a candidate answered differently from the recording, and the JSON
//! field comparison.

use std::fmt;

use serde_json::Value;

/// At most this many field differences are reported per exchange (the rest are counted in
/// a final [`Difference::MoreFields`]).
pub const MAX_FIELD_DIFFERENCES: usize = 50;

/// One way a replayed response differs from the recorded one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Difference {
    /// The status differs (`None`: the recorded service failed with an error).
    Status {
        /// Recorded.
        expected: Option<u16>,
        /// Replayed.
        actual: u16,
    },
    /// A compared header differs or is missing on one side.
    Header {
        /// The header name, lowercase.
        name: String,
        /// Recorded.
        expected: Option<String>,
        /// Replayed.
        actual: Option<String>,
    },
    /// A JSON body field differs or is missing on one side; `path` is a JSON pointer
    /// (`/items/0/price`, `""` for the whole document).
    Field {
        /// Where, as a JSON pointer.
        path: String,
        /// Recorded.
        expected: Option<Value>,
        /// Replayed.
        actual: Option<Value>,
    },
    /// More field differences than [`MAX_FIELD_DIFFERENCES`]; how many more.
    MoreFields(usize),
    /// Non-JSON bodies differ (compared byte for byte).
    Body {
        /// Recorded length.
        expected_len: u64,
        /// Replayed length.
        actual_len: u64,
    },
    /// The candidate failed instead of answering (or its body failed).
    Failed(String),
}

fn opt<T: fmt::Display>(v: Option<&T>) -> String {
    v.map_or_else(|| "(none)".to_owned(), ToString::to_string)
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { expected, actual } => {
                write!(f, "status {} -> {actual}", opt(expected.as_ref()))
            }
            Self::Header {
                name,
                expected,
                actual,
            } => write!(
                f,
                "header {name}: {} -> {}",
                opt(expected.as_ref()),
                opt(actual.as_ref())
            ),
            Self::Field {
                path,
                expected,
                actual,
            } => write!(
                f,
                "field {}: {} -> {}",
                if path.is_empty() { "(root)" } else { path },
                opt(expected.as_ref()),
                opt(actual.as_ref())
            ),
            Self::MoreFields(n) => write!(f, "{n} more fields"),
            Self::Body {
                expected_len,
                actual_len,
            } => write!(f, "body differs ({expected_len} -> {actual_len} bytes)"),
            Self::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Compares two JSON documents field by field, skipping the `ignored` JSON pointers (and
/// everything under them); appends one [`Difference::Field`] per leaf that differs.
pub fn diff_json(expected: &Value, actual: &Value, ignored: &[String], out: &mut Vec<Difference>) {
    let mut found = Vec::new();
    let mut path = String::new();
    walk(expected, actual, ignored, &mut path, &mut found);
    let more = found.len().saturating_sub(MAX_FIELD_DIFFERENCES);
    found.truncate(MAX_FIELD_DIFFERENCES);
    out.extend(found);
    if more > 0 {
        out.push(Difference::MoreFields(more));
    }
}

fn is_ignored(path: &str, ignored: &[String]) -> bool {
    ignored.iter().any(|i| {
        path.strip_prefix(i.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn push_segment(path: &mut String, key: &str) {
    path.push('/');
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn field(path: &str, expected: Option<&Value>, actual: Option<&Value>) -> Difference {
    Difference::Field {
        path: path.to_owned(),
        expected: expected.cloned(),
        actual: actual.cloned(),
    }
}

fn walk(e: &Value, a: &Value, ignored: &[String], path: &mut String, out: &mut Vec<Difference>) {
    if is_ignored(path, ignored) {
        return;
    }
    let len = path.len();
    match (e, a) {
        (Value::Object(eo), Value::Object(ao)) => {
            for (k, ev) in eo {
                push_segment(path, k);
                match ao.get(k) {
                    Some(av) => walk(ev, av, ignored, path, out),
                    None if !is_ignored(path, ignored) => out.push(field(path, Some(ev), None)),
                    None => {}
                }
                path.truncate(len);
            }
            for (k, av) in ao {
                if !eo.contains_key(k) {
                    push_segment(path, k);
                    if !is_ignored(path, ignored) {
                        out.push(field(path, None, Some(av)));
                    }
                    path.truncate(len);
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) => {
            for i in 0..ea.len().max(aa.len()) {
                push_segment(path, &i.to_string());
                match (ea.get(i), aa.get(i)) {
                    (Some(ev), Some(av)) => walk(ev, av, ignored, path, out),
                    (ev, av) if !is_ignored(path, ignored) => out.push(field(path, ev, av)),
                    _ => {}
                }
                path.truncate(len);
            }
        }
        (e, a) if e != a => out.push(field(path, Some(e), Some(a))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(e: &Value, a: &Value, ignored: &[&str]) -> Vec<Difference> {
        let ignored: Vec<String> = ignored.iter().map(|s| (*s).to_owned()).collect();
        let mut out = Vec::new();
        diff_json(e, a, &ignored, &mut out);
        out
    }

    #[test]
    fn fields_are_named_by_json_pointer() {
        let e = json!({"id": 1, "items": [{"p": 5}, {"p": 6}], "a/b": true, "gone": 1, "at": 1});
        let a = json!({"id": 1, "items": [{"p": 5}, {"p": 7}, {"p": 8}], "a/b": false, "new": null, "at": 2});
        let d = diff(&e, &a, &["/at"]);
        let shown: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "field /a~1b: true -> false",
                "field /gone: 1 -> (none)",
                "field /items/1/p: 6 -> 7",
                "field /items/2: (none) -> {\"p\":8}",
                "field /new: (none) -> null",
            ]
        );
        assert!(diff(&e, &e, &[]).is_empty());
        // A whole subtree ignored, and a prefix that is not a segment is not ignored.
        assert_eq!(
            diff(&e, &a, &["/items", "/a~1b", "/gone", "/new", "/at"]),
            []
        );
        assert_eq!(diff(&json!({"ab": 1}), &json!({"ab": 2}), &["/a"]).len(), 1);
        assert_eq!(
            diff(&json!(1), &json!("1"), &[]),
            [field("", Some(&json!(1)), Some(&json!("1")))]
        );
    }

    #[test]
    fn field_differences_are_bounded() {
        let e = Value::Array((0..60).map(Value::from).collect());
        let a = Value::Array((100..160).map(Value::from).collect());
        let d = diff(&e, &a, &[]);
        assert_eq!(d.len(), MAX_FIELD_DIFFERENCES + 1);
        assert_eq!(d.last(), Some(&Difference::MoreFields(10)));
    }
}
