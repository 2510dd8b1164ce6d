//! The gateway's sections of the policy file: `listeners`, `upstreams`, `admin` and each
//! route's `forward`, read with every problem and its field path. The policy sections are
//! read by `palisade-policy`; both lists of problems are reported together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use palisade_policy::Problem;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::rewrite::Template;

/// Connection limits of one listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Limits {
    /// Time allowed to receive a request head (slowloris guard); HTTP/1.1 also waits at most
    /// this long for the next request head on an idle keep-alive connection.
    #[serde(with = "humantime_serde")]
    pub(crate) header_read_timeout: Duration,
    /// Largest request head in bytes (HTTP/1.1 answers 431 above it; HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
    /// Open connections at most; more wait in the kernel's accept queue.
    pub(crate) max_connections: usize,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    #[serde(with = "humantime_serde")]
    pub(crate) idle_timeout: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    #[serde(with = "humantime_serde")]
    pub(crate) drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// One listening socket (HTTP/1.1 and h2c on the same port).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Listener {
    pub(crate) address: SocketAddr,
    #[serde(default)]
    pub(crate) limits: Limits,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Admin {
    pub(crate) address: SocketAddr,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
        }
    }
}

/// How a group picks an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Balance {
    /// In turn, skipping unhealthy and ejected endpoints.
    #[default]
    RoundRobin,
    /// Power of two choices on requests in flight.
    P2c,
}

/// The protocol spoken to a group's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Protocol {
    /// HTTP/1.1 with a keep-alive pool.
    #[default]
    Http1,
    /// HTTP/2 prior knowledge (h2c), e.g. gRPC upstreams.
    H2,
}

/// Active health checks of a group's endpoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HealthCheck {
    pub(crate) path: String,
    #[serde(with = "humantime_serde")]
    pub(crate) interval: Duration,
    #[serde(with = "humantime_serde")]
    pub(crate) timeout: Duration,
    pub(crate) healthy_threshold: u32,
    pub(crate) unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/health".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// Passive outlier ejection: a breaker per endpoint over its recent calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Outlier {
    /// The last N calls to an endpoint are looked at.
    pub(crate) window: u32,
    /// Calls needed in the window before an endpoint can be ejected.
    pub(crate) minimum_calls: u32,
    /// Failure rate (5xx, connect errors, timeouts) in percent that ejects.
    pub(crate) failure_rate: f32,
    /// The first ejection's length.
    #[serde(with = "humantime_serde")]
    pub(crate) base_ejection_time: Duration,
    /// Each consecutive ejection lasts `growth` times the previous one, up to this.
    #[serde(with = "humantime_serde")]
    pub(crate) max_ejection_time: Duration,
    pub(crate) growth: f64,
    /// Never eject more than this share of a group, in percent.
    pub(crate) max_ejection_percent: u32,
}

impl Default for Outlier {
    fn default() -> Self {
        Self {
            window: 20,
            minimum_calls: 5,
            failure_rate: 50.0,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            growth: 2.0,
            max_ejection_percent: 50,
        }
    }
}

/// A named group of endpoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upstream {
    /// `host:port` of each endpoint.
    pub(crate) endpoints: Vec<String>,
    /// Relative weights of the endpoints (same length), for a weighted split such as a
    /// canary; round robin only.
    pub(crate) weights: Option<Vec<u32>>,
    #[serde(default)]
    pub(crate) load_balancing: Balance,
    #[serde(default)]
    pub(crate) protocol: Protocol,
    /// Time allowed for an endpoint's response head (504 after it).
    #[serde(default = "thirty_seconds", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub(crate) connect_timeout: Duration,
    /// Idle pooled connections kept per endpoint.
    #[serde(default = "default_idle")]
    pub(crate) max_idle_per_endpoint: usize,
    pub(crate) health_check: Option<HealthCheck>,
    pub(crate) outlier: Option<Outlier>,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn default_idle() -> usize {
    64
}

/// Header edits.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HeaderOps {
    /// Set (replacing any value) these headers.
    pub(crate) add: BTreeMap<String, String>,
    /// Remove these headers.
    pub(crate) remove: Vec<String>,
}

/// A route's `forward` section as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardRaw {
    pub(crate) upstream: String,
    pub(crate) strip_prefix: Option<String>,
    pub(crate) rewrite: Option<String>,
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) request_headers: HeaderOps,
    #[serde(default)]
    pub(crate) response_headers: HeaderOps,
    #[serde(default = "default_body")]
    pub(crate) max_request_body: u64,
}

fn default_body() -> u64 {
    16 * 1024 * 1024
}

/// A route's `forward` section, checked: the path template it captures from included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Forward {
    pub(crate) raw: ForwardRaw,
    /// The route's `match.path` template when `rewrite` uses its parameters.
    pub(crate) captures: Option<Template>,
    pub(crate) rewrite: Option<Template>,
}

/// Everything the gateway reads from the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct GatewayConfig {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) admin: Admin,
    pub(crate) upstreams: BTreeMap<String, Upstream>,
    /// Per route in file order, the fallback last: where it forwards (`None`: 404).
    pub(crate) forwards: Vec<Option<Forward>>,
}

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
    if !upstreams.contains_key(&raw.upstream) {
        let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        problems.push(Problem::new(
            format!("{at}.upstream"),
            format!(
                "no upstream named `{}` (defined: {})",
                raw.upstream,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
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
        if u.load_balancing == Balance::P2c {
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
fn typed<T: DeserializeOwned>(v: &Value, at: &str, problems: &mut Vec<Problem>) -> Option<T> {
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
