//! A route's `forward.split`: a weighted split over upstream groups, built on
//! `palisade-traffic`'s `Split` (weights, sticky key, override header, path and method rules)
//! with an optional `CanaryController` moving the canary's weight through steps.
//!
//! ```toml
//! [routes.forward.split]
//! arms = [{ name = "stable", upstream = "v1" }, { name = "canary", upstream = "v2" }]
//! weights = [95, 5]
//! sticky = { type = "header", name = "x-user-id" }
//! override_header = "x-arm"
//! override_access = { type = "secret", header = "x-override-token", secret = "…16 bytes or more…" }
//! response_header = "x-arm"
//! rules = [{ path_prefix = "/orders", arm = "canary" }, { methods = ["GET"], arm = "stable" }]
//! canary = { stable = "stable", canary = "canary", steps = [5, 25, 50, 100], interval = "1m",
//!            max_error_rate_increase = 0.05, min_samples = 50, paused = false }
//! ```

use std::collections::BTreeMap;

use palisade_core::KeyConfig;
use palisade_policy::Problem;
use palisade_traffic::{CanaryConfig, CanaryController, SplitConfig};
use serde::Deserialize;
use serde_json::Value;

use super::Upstream;
use super::read::typed;

/// Most arms in one split.
const MAX_ARMS: usize = 16;

/// One arm of a split: a name (used by weights order, rules, the override header and the
/// admin API) and the upstream group it sends to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Arm {
    pub(crate) name: String,
    pub(crate) upstream: String,
}

/// A canary rollout over two arms of a split.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::struct_field_names)] // `canary.canary`: the arm, named as in the file
pub(crate) struct Canary {
    pub(crate) stable: String,
    pub(crate) canary: String,
    pub(crate) config: CanaryConfig,
    /// Start paused (no analysis until `POST /canaries/ROUTE/resume`).
    pub(crate) paused: bool,
}

/// A checked `forward.split`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Split {
    pub(crate) arms: Vec<Arm>,
    /// Weights, rules, override, response header, seed (the traffic crate's own section).
    pub(crate) routing: SplitConfig,
    pub(crate) sticky: Option<KeyConfig>,
    pub(crate) canary: Option<Canary>,
}

/// Reads `forward.split` at `at`, every problem into `problems`.
pub(crate) fn read(
    v: &Value,
    at: &str,
    upstreams: &BTreeMap<String, Upstream>,
    problems: &mut Vec<Problem>,
) -> Option<Split> {
    let Value::Object(map) = v else {
        problems.push(Problem::new(at, "must be a table"));
        return None;
    };
    let before = problems.len();
    let mut rest = map.clone();
    let arms = if let Some(a) = rest.remove("arms") {
        typed::<Vec<Arm>>(&a, &format!("{at}.arms"), problems).unwrap_or_default()
    } else {
        problems.push(Problem::new(
            format!("{at}.arms"),
            "is required: arms = [{ name = \"stable\", upstream = \"v1\" }, …]",
        ));
        Vec::new()
    };
    if problems.len() == before && !(1..=MAX_ARMS).contains(&arms.len()) {
        problems.push(Problem::new(
            format!("{at}.arms"),
            format!("needs 1 to {MAX_ARMS} arms (got {})", arms.len()),
        ));
    }
    for (i, a) in arms.iter().enumerate() {
        if !upstreams.contains_key(&a.upstream) {
            problems.push(Problem::new(
                format!("{at}.arms[{i}].upstream"),
                format!("no upstream named `{}`", a.upstream),
            ));
        }
    }
    let sticky = rest
        .remove("sticky")
        .and_then(|s| typed::<KeyConfig>(&s, &format!("{at}.sticky"), problems));
    match &sticky {
        Some(KeyConfig::Global) => problems.push(Problem::new(
            format!("{at}.sticky"),
            "a global key puts every request in one bucket: use a header, path or client IP",
        )),
        Some(k) => {
            if let Err(e) = k.build() {
                problems.push(Problem::new(
                    format!("{at}.sticky.{}", e.field()),
                    e.problem(),
                ));
            }
        }
        None => {}
    }
    let canary = rest
        .remove("canary")
        .and_then(|c| canary(&c, &format!("{at}.canary"), &arms, problems));
    let routing = typed::<SplitConfig>(&Value::Object(rest), at, problems);
    // The traffic crate checks the rest (weights per arm, rule arms, override access) when it
    // builds a split: build one over placeholder arms.
    if let Some(routing) = &routing
        && problems.len() == before
    {
        let built = arms
            .iter()
            .fold(palisade_traffic::Split::builder::<()>(), |b, a| {
                b.arm(a.name.as_str(), ())
            })
            .with_config(routing.clone())
            .and_then(palisade_traffic::SplitBuilder::build);
        match built {
            Err(e) => problems.push(Problem::new(format!("{at}.{}", e.field()), e.problem())),
            Ok((_, handle)) => {
                if let Some(c) = &canary
                    && let Err(e) =
                        CanaryController::start(handle, &c.stable, &c.canary, c.config.clone())
                {
                    problems.push(Problem::new(
                        format!("{at}.canary.{}", e.field()),
                        e.problem(),
                    ));
                }
            }
        }
    }
    (problems.len() == before).then(|| Split {
        arms,
        routing: routing.unwrap_or_default(),
        sticky,
        canary,
    })
}

fn canary(v: &Value, at: &str, arms: &[Arm], problems: &mut Vec<Problem>) -> Option<Canary> {
    let Value::Object(map) = v else {
        problems.push(Problem::new(at, "must be a table"));
        return None;
    };
    let mut rest = map.clone();
    let mut name = |key: &str, default: Option<&Arm>| match rest.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.push(Problem::new(format!("{at}.{key}"), "must be an arm name"));
            None
        }
        None => default.map(|a| a.name.clone()),
    };
    let stable = name("stable", arms.first());
    let canary = name("canary", arms.last());
    let paused = match rest.remove("paused") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            problems.push(Problem::new(
                format!("{at}.paused"),
                "must be true or false",
            ));
            false
        }
    };
    let config = typed::<CanaryConfig>(&Value::Object(rest), at, problems)?;
    if let Err(e) = config.validate() {
        problems.push(Problem::new(format!("{at}.{}", e.field()), e.problem()));
        return None;
    }
    Some(Canary {
        stable: stable?,
        canary: canary?,
        config,
        paused,
    })
}
