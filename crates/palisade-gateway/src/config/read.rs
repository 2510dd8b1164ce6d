//! Reading and checking the gateway sections: every problem with its field path.

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_policy::Problem;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    Admin, Balance, Forward, ForwardRaw, GatewayConfig, Limits, Listener, Target, Upstream,
};
use crate::rewrite::Template;

const MAX_ENDPOINTS: usize = 64;

/// Reads the gateway sections of `root`, every problem into `problems`.
pub(crate) fn read(root: &Value, problems: &mut Vec<Problem>) -> GatewayConfig {
    let mut cfg = GatewayConfig::default();
    let Value::Object(top) = root else {
        return cfg;
    };
    match top.get("listeners") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("listeners[{i}]");
                if let Some(l) = typed::<Listener>(item, &at, problems) {
                    check_limits(&l.limits, &format!("{at}.limits"), problems);
                    cfg.listeners.push(l);
                }
            }
            if items.is_empty() {
                problems.push(Problem::new("listeners", "needs at least one listener"));
            }
        }
        Some(_) => {} // reported by the policy crate
        None => problems.push(Problem::new(
            "listeners",
            "is required by the gateway: [[listeners]] address = \"127.0.0.1:8080\"",
        )),
    }
    if let Some(v) = top.get("admin")
        && let Some(a) = typed::<Admin>(v, "admin", problems)
    {
        cfg.admin = a;
    }
    if let Some(Value::Object(ups)) = top.get("upstreams") {
        for (name, v) in ups {
            let at = format!("upstreams.{name}");
            if let Some(u) = typed::<Upstream>(v, &at, problems) {
                check_upstream(&u, &at, problems);
                cfg.upstreams.insert(name.clone(), u);
            }
        }
    }
    let routes = match top.get("routes") {
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    };
    let fallback = top.get("fallback");
    let all = routes
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("routes[{i}]"), Some(r)))
        .chain(std::iter::once(("fallback".to_owned(), fallback)));
    for (at, route) in all {
        let fwd = route.and_then(|r| r.get("forward"));
        let Some(fwd) = fwd else {
            cfg.forwards.push(None);
            continue;
        };
        let at = format!("{at}.forward");
        let path = route
            .and_then(|r| r.get("match"))
            .and_then(|m| m.get("path"))
            .and_then(Value::as_str);
        cfg.forwards
            .push(forward(fwd, &at, path, &cfg.upstreams, problems));
    }
    cfg
}

fn forward(
    v: &Value,
    at: &str,
    match_path: Option<&str>,
    upstreams: &BTreeMap<String, Upstream>,
    problems: &mut Vec<Problem>,
) -> Option<Forward> {
    let raw = typed::<ForwardRaw>(v, at, problems)?;
    let before = problems.len();
    let target = match (&raw.upstream, &raw.split) {
        (Some(u), None) => {
            if !upstreams.contains_key(u) {
                let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                problems.push(Problem::new(
                    format!("{at}.upstream"),
                    format!(
                        "no upstream named `{u}` (defined: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            Some(Target::Upstream(u.clone()))
        }
        (None, Some(v)) => super::split::read(v, &format!("{at}.split"), upstreams, problems)
            .map(|s| Target::Split(Box::new(s))),
        _ => {
            problems.push(Problem::new(
                at,
                "needs exactly one of `upstream` (a group) or `split` (a weighted split over groups)",
            ));
            None
        }
    };
    if let Some(p) = &raw.strip_prefix
        && (!p.starts_with('/') || p.len() < 2)
    {
        problems.push(Problem::new(
            format!("{at}.strip_prefix"),
            format!("`{p}` must start with `/` and not be `/` alone"),
        ));
    }
    let mut rewrite = None;
    let mut captures = None;
    if let Some(r) = &raw.rewrite {
        match Template::new(r) {
            Ok(t) => {
                let params = t.params();
                if !params.is_empty() {
                    match match_path.map(Template::new) {
                        Some(Ok(m)) => {
                            for p in params {
                                if !m.params().contains(&p) {
                                    problems.push(Problem::new(
                                        format!("{at}.rewrite"),
                                        format!(
                                            "`{{{p}}}` is not a parameter of the route's match.path `{}`",
                                            m.source()
                                        ),
                                    ));
                                }
                            }
                            captures = Some(m);
                        }
                        _ => problems.push(Problem::new(
                            format!("{at}.rewrite"),
                            "uses parameters, so the route needs `match = { path = \"/…/{name}\" }`",
                        )),
                    }
                }
                rewrite = Some(t);
            }
            Err(e) => problems.push(Problem::new(format!("{at}.rewrite"), e)),
        }
        if raw.strip_prefix.is_some() {
            problems.push(Problem::new(
                format!("{at}.rewrite"),
                "use either strip_prefix or rewrite, not both",
            ));
        }
    }
    if let Some(h) = &raw.host
        && (h.is_empty() || http::uri::Authority::try_from(h.as_str()).is_err())
    {
        problems.push(Problem::new(
            format!("{at}.host"),
            format!("`{h}` is not a valid host[:port]"),
        ));
    }
    for (which, ops) in [
        ("request_headers", &raw.request_headers),
        ("response_headers", &raw.response_headers),
    ] {
        for (name, value) in &ops.add {
            let here = format!("{at}.{which}.add.{name}");
            match http::HeaderName::try_from(name.as_str()) {
                Ok(n) if crate::headers::is_hop_by_hop(&n) => problems.push(Problem::new(
                    here.clone(),
                    "is a hop-by-hop header and cannot be forwarded",
                )),
                Ok(_) => {}
                Err(_) => problems.push(Problem::new(here.clone(), "is not a valid header name")),
            }
            if http::HeaderValue::try_from(value.as_str()).is_err() {
                problems.push(Problem::new(
                    here,
                    "has a value that is not a valid header value",
                ));
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            if http::HeaderName::try_from(name.as_str()).is_err() {
                problems.push(Problem::new(
                    format!("{at}.{which}.remove[{i}]"),
                    format!("`{name}` is not a valid header name"),
                ));
            }
        }
    }
    if raw.max_request_body == 0 {
        problems.push(Problem::new(
            format!("{at}.max_request_body"),
            "must be at least 1 (bytes)",
        ));
    }
    (problems.len() == before).then_some(Forward {
        target: target?,
        raw,
        captures,
        rewrite,
    })
}

fn check_limits(l: &Limits, at: &str, problems: &mut Vec<Problem>) {
    let ms = Duration::from_millis;
    let day = Duration::from_secs(86_400);
    for (field, d, min) in [
        ("header_read_timeout", l.header_read_timeout, ms(10)),
        ("idle_timeout", l.idle_timeout, ms(10)),
        ("drain_timeout", l.drain_timeout, Duration::ZERO),
    ] {
        if d < min || d > day {
            problems.push(Problem::new(
                format!("{at}.{field}"),
                format!("must be between {min:?} and 1 day (got {d:?})"),
            ));
        }
    }
    if !(8192..=1 << 20).contains(&l.max_header_bytes) {
        problems.push(Problem::new(
            format!("{at}.max_header_bytes"),
            format!(
                "must be between 8192 and 1048576 (got {})",
                l.max_header_bytes
            ),
        ));
    }
    if !(1..=1_000_000).contains(&l.max_connections) {
        problems.push(Problem::new(
            format!("{at}.max_connections"),
            format!("must be between 1 and 1000000 (got {})", l.max_connections),
        ));
    }
}

fn check_upstream(u: &Upstream, at: &str, problems: &mut Vec<Problem>) {
    if u.endpoints.is_empty() || u.endpoints.len() > MAX_ENDPOINTS {
        problems.push(Problem::new(
            format!("{at}.endpoints"),
            format!(
                "needs 1 to {MAX_ENDPOINTS} endpoints (got {})",
                u.endpoints.len()
            ),
        ));
    }
    for (i, e) in u.endpoints.iter().enumerate() {
        let ok = http::uri::Authority::try_from(e.as_str())
            .ok()
            .is_some_and(|a| a.port_u16().is_some() && !a.host().is_empty());
        if !ok {
            problems.push(Problem::new(
                format!("{at}.endpoints[{i}]"),
                format!("`{e}` must be host:port"),
            ));
        }
    }
    if let Some(w) = &u.weights {
        if w.len() != u.endpoints.len() {
            problems.push(Problem::new(
                format!("{at}.weights"),
                format!(
                    "needs one weight per endpoint ({} endpoints, {} weights)",
                    u.endpoints.len(),
                    w.len()
                ),
            ));
        }
        if w.iter().any(|&x| x > 1000) || w.iter().all(|&x| x == 0) {
            problems.push(Problem::new(
                format!("{at}.weights"),
                "each weight must be 0 to 1000, and one at least above 0",
            ));
        }
        if u.load_balancing != Balance::RoundRobin {
            problems.push(Problem::new(
                format!("{at}.weights"),
                "weights apply to round_robin; p2c balances on load",
            ));
        }
    }
    let ms = Duration::from_millis;
    for (field, d) in [
        ("timeout", u.timeout),
        ("connect_timeout", u.connect_timeout),
    ] {
        if d < ms(1) || d > Duration::from_secs(3600) {
            problems.push(Problem::new(
                format!("{at}.{field}"),
                format!("must be between 1ms and 1h (got {d:?})"),
            ));
        }
    }
    if let Some(h) = &u.health_check {
        let hc = format!("{at}.health_check");
        if !h.path.starts_with('/') {
            problems.push(Problem::new(
                format!("{hc}.path"),
                format!("`{}` must start with `/`", h.path),
            ));
        }
        if h.interval < ms(10) {
            problems.push(Problem::new(
                format!("{hc}.interval"),
                format!("must be at least 10ms (got {:?})", h.interval),
            ));
        }
        if h.timeout < ms(1) || h.timeout > h.interval.max(ms(1)) {
            problems.push(Problem::new(
                format!("{hc}.timeout"),
                format!("must be between 1ms and the interval (got {:?})", h.timeout),
            ));
        }
        for (field, n) in [
            ("healthy_threshold", h.healthy_threshold),
            ("unhealthy_threshold", h.unhealthy_threshold),
        ] {
            if !(1..=100).contains(&n) {
                problems.push(Problem::new(
                    format!("{hc}.{field}"),
                    format!("must be between 1 and 100 (got {n})"),
                ));
            }
        }
    }
    if let Some(o) = &u.outlier {
        let oat = format!("{at}.outlier");
        if o.max_ejection_percent > 100 {
            problems.push(Problem::new(
                format!("{oat}.max_ejection_percent"),
                format!("must be between 0 and 100 (got {})", o.max_ejection_percent),
            ));
        }
        if let Err(e) = crate::upstream::breaker_config(o) {
            let field = match e.field() {
                "window.count" => "window",
                "failure_rate_threshold" => "failure_rate",
                "wait_in_open" => "base_ejection_time",
                "wait_multiplier" => "growth",
                "max_wait_in_open" => "max_ejection_time",
                other => other,
            };
            problems.push(Problem::new(format!("{oat}.{field}"), e.problem()));
        }
    }
}

/// Deserializes `v` as `T`, reporting the first problem at its full path.
pub(super) fn typed<T: DeserializeOwned>(
    v: &Value,
    at: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let path = e.path().to_string();
            let mut msg = e.into_inner().to_string();
            let here = if path == "." || path.is_empty() {
                // A missing or unknown field: name it in the path when serde says which.
                let named = field_in(&msg);
                named.map_or_else(|| at.to_owned(), |f| format!("{at}.{f}"))
            } else {
                format!("{at}.{}", brackets(&path))
            };
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            problems.push(Problem::new(here, msg));
            None
        }
    }
}

fn field_in(msg: &str) -> Option<&str> {
    let rest = msg
        .strip_prefix("unknown field `")
        .or_else(|| msg.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// `endpoints.0` → `endpoints[0]`.
fn brackets(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 2);
    for seg in path.split('.') {
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
