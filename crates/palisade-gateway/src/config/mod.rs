//! The gateway's sections of the policy file: `listeners`, `upstreams`, `admin` and each
//! route's `forward`, read with every problem and its field path. The policy sections are
//! read by `palisade-policy`; both lists of problems are reported together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::rewrite::Template;

mod read;
pub(crate) mod split;

pub(crate) use read::read;
pub(crate) use split::{Canary, Split};

/// Where a route forwards.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// One upstream group.
    Upstream(String),
    /// A weighted split over upstream groups.
    Split(Box<Split>),
}

impl Target {
    /// The upstream group, or the split's groups joined with `|`, for logs and metrics.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Upstream(u) => u.clone(),
            Self::Split(s) => s
                .arms
                .iter()
                .map(|a| a.upstream.as_str())
                .collect::<Vec<_>>()
                .join("|"),
        }
    }
}

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

/// The admin listener, and the gateway's own logs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Admin {
    pub(crate) address: SocketAddr,
    /// The format of the logs on stderr (`--log-format` wins); read at start only.
    pub(crate) log_format: LogFormat,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
            log_format: LogFormat::Text,
        }
    }
}

/// The format of the logs (access log included) on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    /// `tracing`'s human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
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
    /// Power of two choices on peak-EWMA latency × (requests in flight + 1).
    P2cEwma,
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
    /// The one upstream group this route forwards to; or `split`.
    pub(crate) upstream: Option<String>,
    /// A weighted split over several upstream groups (canary, blue-green, strangler fig,
    /// read/write split); read by [`split`].
    pub(crate) split: Option<serde_json::Value>,
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
    /// Where the route sends requests: one group, or a split over several.
    pub(crate) target: Target,
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
