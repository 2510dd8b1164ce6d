//! Aggregation and the `application/health+json` document.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::check::{CheckOutcome, Status};
use crate::entry::{CheckResult, Entry};
use crate::registry::Meta;

/// Media type of the health document (draft-inadarei-api-health-check §3).
pub const HEALTH_JSON: &str = "application/health+json";

/// Output of a check that has not completed its first run yet.
pub const PENDING: &str = "not checked yet";

/// One check's latest result in a [`HealthReport`].
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The check's name, `component:measurement`.
    pub name: Arc<str>,
    /// Whether its failure fails the service.
    pub critical: bool,
    /// What the check found (a pending check is `fail` with output [`PENDING`]).
    pub outcome: CheckOutcome,
    /// When the run started (`time`), `None` while pending.
    pub time: Option<SystemTime>,
    /// How long the run took.
    pub duration: Duration,
    /// The draft's `componentType`.
    pub component_type: Option<&'static str>,
}

impl CheckReport {
    pub(crate) fn new(entry: &Entry, result: Option<CheckResult>) -> Self {
        let (outcome, time, duration) = match result {
            Some(r) => (r.outcome, Some(r.time), r.duration),
            None => (CheckOutcome::fail(PENDING), None, Duration::ZERO),
        };
        Self {
            name: entry.name.clone(),
            critical: entry.critical,
            outcome,
            time,
            duration,
            component_type: entry.component_type,
        }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("status".into(), self.outcome.status.as_str().into());
        if let Some(t) = self.component_type {
            o.insert("componentType".into(), t.into());
        }
        match &self.outcome.observed {
            Some((value, unit)) => {
                o.insert("observedValue".into(), json_f64(*value));
                o.insert("observedUnit".into(), Value::from(&**unit));
            }
            None if self.time.is_some() => {
                o.insert(
                    "observedValue".into(),
                    json_f64(self.duration.as_micros() as f64 / 1000.0),
                );
                o.insert("observedUnit".into(), "ms".into());
            }
            None => {}
        }
        if let Some(t) = self.time {
            o.insert(
                "time".into(),
                humantime::format_rfc3339_millis(t).to_string().into(),
            );
        }
        if let Some(out) = &self.outcome.output {
            o.insert("output".into(), out.clone().into());
        }
        Value::Object(o)
    }
}

fn json_f64(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// The aggregated health of a service.
///
/// Rule (Palisade's; the health-check draft leaves aggregation open): `fail` if draining or any *critical* check fails; else `warn` if
/// any check warns or fails; else `pass`.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// The overall status.
    pub status: Status,
    /// Each check's latest result, in registration order.
    pub checks: Vec<CheckReport>,
    /// Whether the service is draining.
    pub draining: bool,
    meta: Meta,
}

impl HealthReport {
    pub(crate) fn new(checks: Vec<CheckReport>, draining: bool, meta: Meta) -> Self {
        let status = aggregate(
            checks.iter().map(|c| (c.critical, c.outcome.status)),
            draining,
        );
        Self {
            status,
            checks,
            draining,
            meta,
        }
    }

    /// The aggregated status of the named checks only (all checks if `names` is empty).
    pub fn status_of(&self, names: &[&str]) -> Status {
        aggregate(
            self.checks
                .iter()
                .filter(|c| names.is_empty() || names.contains(&&*c.name))
                .map(|c| (c.critical, c.outcome.status)),
            self.draining,
        )
    }

    /// The HTTP status to answer with: 503 for `fail`, 200 otherwise.
    pub fn http_status(&self) -> http::StatusCode {
        if self.status == Status::Fail {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            http::StatusCode::OK
        }
    }

    /// The `application/health+json` document.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        root.insert("status".into(), self.status.as_str().into());
        let meta = [
            ("version", &self.meta.version),
            ("releaseId", &self.meta.release_id),
            ("serviceId", &self.meta.service_id),
            ("description", &self.meta.description),
        ];
        for (key, value) in meta {
            if let Some(v) = value {
                root.insert(key.into(), v.clone().into());
            }
        }
        if self.draining {
            root.insert("output".into(), "draining".into());
        }
        if !self.checks.is_empty() {
            let mut checks = Map::new();
            for c in &self.checks {
                checks.insert(c.name.to_string(), Value::Array(vec![c.to_json()]));
            }
            root.insert("checks".into(), Value::Object(checks));
        }
        Value::Object(root)
    }
}

/// The aggregation rule on `(critical, status)` pairs.
pub fn aggregate(checks: impl IntoIterator<Item = (bool, Status)>, draining: bool) -> Status {
    if draining {
        return Status::Fail;
    }
    let mut overall = Status::Pass;
    for (critical, status) in checks {
        match status {
            Status::Fail if critical => return Status::Fail,
            Status::Fail | Status::Warn => overall = Status::Warn,
            Status::Pass => {}
        }
    }
    overall
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_rule() {
        use Status::{Fail, Pass, Warn};
        let cases: &[(&[(bool, Status)], Status)] = &[
            (&[], Pass),
            (&[(true, Pass), (false, Pass)], Pass),
            (&[(true, Warn)], Warn),
            (&[(false, Fail)], Warn),
            (&[(false, Fail), (true, Pass)], Warn),
            (&[(true, Fail)], Fail),
            (&[(false, Warn), (true, Fail)], Fail),
        ];
        for (checks, want) in cases {
            assert_eq!(
                aggregate(checks.iter().copied(), false),
                *want,
                "{checks:?}"
            );
            assert_eq!(aggregate(checks.iter().copied(), true), Fail);
        }
    }
}
