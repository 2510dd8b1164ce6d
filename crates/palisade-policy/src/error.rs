//! [`PolicyError`]: every problem in a policy file, each with its full field path.

use std::fmt;

use palisade_core::ConfigError;

/// One problem in a policy file: the full field path (`routes[2].breaker.failure_rate_threshold`)
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The full field path, `defaults.timeout.timeout`, `routes[2].breaker.minimum_calls`, …
    pub path: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A pattern crate's [`ConfigError`] found in the section at `section` (e.g.
    /// `routes[2].breaker`); its dotted field (`quotas.0.limit`) is rewritten with indices
    /// in brackets (`quotas[0].limit`).
    pub fn from_config(section: &str, e: &ConfigError) -> Self {
        Self::new(join(section, &bracket_indices(e.field())), e.problem())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A policy file that cannot be used: every problem found, in file order, not only the first.
///
/// ```
/// let err = palisade_policy::PolicySet::from_toml(
///     "[fallback]\nbreaker = { failure_rate_threshold = 120.0 }\ntimeout = { timeout = \"0s\" }",
/// )
/// .unwrap_err();
/// assert_eq!(err.problems().len(), 2);
/// assert_eq!(err.problems()[0].path, "fallback.timeout.timeout");
/// assert_eq!(err.problems()[1].path, "fallback.breaker.failure_rate_threshold");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    problems: Vec<Problem>,
}

impl PolicyError {
    /// An error made of these problems (at least one).
    pub fn new(problems: Vec<Problem>) -> Self {
        debug_assert!(!problems.is_empty());
        Self { problems }
    }
    /// One problem.
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(vec![Problem::new(path, message)])
    }
    /// Every problem, in file order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid policy file ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// `a` + `.` + `b`, or the non-empty one; `b` may start with `[`.
pub(crate) fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else if b.is_empty() {
        a.to_owned()
    } else if b.starts_with('[') {
        format!("{a}{b}")
    } else {
        format!("{a}.{b}")
    }
}

/// `quotas.0.limit` → `quotas[0].limit`; `reserved[0]` stays.
pub(crate) fn bracket_indices(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 2);
    for seg in field.split('.') {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_use_brackets_for_indices() {
        assert_eq!(bracket_indices("quotas.0.limit"), "quotas[0].limit");
        assert_eq!(bracket_indices("tiers.1.quotas.0"), "tiers[1].quotas[0]");
        assert_eq!(bracket_indices("reserved[0]"), "reserved[0]");
        assert_eq!(
            join("routes[2].rate_limit", "quotas[0].limit"),
            "routes[2].rate_limit.quotas[0].limit"
        );
        assert_eq!(join("routes", "[2]"), "routes[2]");
        let p = Problem::from_config(
            "routes[2].breaker",
            &ConfigError::new(
                "failure_rate_threshold",
                "must be a percentage in (0, 100] (got 120)",
            ),
        );
        assert_eq!(
            p.to_string(),
            "routes[2].breaker.failure_rate_threshold: must be a percentage in (0, 100] (got 120)"
        );
    }
}
