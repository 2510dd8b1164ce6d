//! Plain-data configuration of the fault layer, deserializable with the `serde` feature:
//! the `fault` section of a policy file.

use std::num::NonZeroU64;
use std::time::Duration;

use http::StatusCode;
use palisade_core::{ConfigError, GrpcCode};

use crate::FaultLayer;
use crate::fault::{Latency, MAX_DELAY};
use crate::headers::HeaderControl;

/// Largest accepted [`FaultConfig::max_active`].
pub const MAX_ACTIVE_LIMIT: usize = 1_000_000;

/// Configuration of a [`FaultLayer`], e.g. one route's `fault` section:
///
/// ```toml
/// seed = 42
/// max_active = 10
/// delay = { probability = 0.1, latency = { uniform = { min = "50ms", max = "200ms" } } }
/// abort = { probability = 0.05, http_status = 503 }
/// headers = { enabled = true, trusted_peers = ["10.0.0.0/8"] }
/// ```
///
/// Validated once by [`FaultConfig::build`] (or `TryFrom`): probabilities in `[0, 1]`,
/// delays at most one hour, statuses in `[200, 600)`, gRPC codes 0–16; the error names the
/// field path (`delay.latency.max`).
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct FaultConfig {
    /// The layer's instance name, for its events and metrics: 1–128 visible ASCII
    /// characters. Default: none (`"chaos"`).
    pub name: Option<String>,
    /// Added latency. Default none.
    pub delay: Option<DelayConfig>,
    /// Aborts with a status. Default none.
    pub abort: Option<AbortConfig>,
    /// Failures with an error. Default none.
    pub error: Option<ErrorConfig>,
    /// Response bandwidth limit. Default none.
    pub throttle: Option<ThrottleConfig>,
    /// Most faulted requests in flight, 0 to 1 000 000. Default (`None`) 100.
    pub max_active: Option<usize>,
    /// Seed of the random source, for reproducible runs. Default random.
    pub seed: Option<u64>,
    /// Fault only the next N requests. Default unlimited.
    pub next_requests: Option<u64>,
    /// Envoy fault-header control. Default off.
    pub headers: Option<HeaderConfig>,
}

/// The `delay` section.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct DelayConfig {
    /// Share of requests delayed, in `[0, 1]`.
    pub probability: f64,
    /// How long.
    pub latency: Latency,
}

impl DelayConfig {
    /// A delay section.
    pub fn new(probability: f64, latency: Latency) -> Self {
        Self {
            probability,
            latency,
        }
    }
}

/// The `abort` section: exactly one of `http_status` and `grpc_status`.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct AbortConfig {
    /// Share of requests aborted, in `[0, 1]`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub probability: f64,
    /// HTTP status, 200 to 599.
    #[cfg_attr(feature = "serde", serde(default))]
    pub http_status: Option<u16>,
    /// gRPC code, 0 to 16.
    #[cfg_attr(feature = "serde", serde(default))]
    pub grpc_status: Option<u32>,
}

impl AbortConfig {
    /// An HTTP abort section.
    pub fn http(probability: f64, status: u16) -> Self {
        Self {
            probability,
            http_status: Some(status),
            grpc_status: None,
        }
    }
}

/// The `error` section.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ErrorConfig {
    /// Share of requests failed, in `[0, 1]`.
    pub probability: f64,
}

/// The `throttle` section.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Share of responses throttled, in `[0, 1]`.
    pub probability: f64,
    /// Bandwidth, 1 byte/s to 10 GiB/s.
    pub bytes_per_second: u64,
}

/// The `headers` section: Envoy fault headers.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct HeaderConfig {
    /// Honour fault headers. Default `false`: the section alone enables nothing.
    pub enabled: bool,
    /// Honour them only from these peer networks (CIDR). Default: any peer.
    pub trusted_peers: Option<Vec<String>>,
    /// Longest delay a header may ask for, at most 1 h. Default 1 h.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub max_delay: Duration,
    /// Largest share a header may fault, in percent (0–100). Default 100.
    pub max_percentage: u8,
}

impl Default for HeaderConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            trusted_peers: None,
            max_delay: MAX_DELAY,
            max_percentage: 100,
        }
    }
}

fn probability(field: &'static str, p: f64) -> Result<f64, ConfigError> {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return Err(ConfigError::new(
            field,
            format!("must be a probability between 0.0 and 1.0 (got {p})"),
        ));
    }
    Ok(p)
}

fn delay(field: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d > MAX_DELAY {
        return Err(ConfigError::new(
            field,
            format!("must be at most 1h (got {d:?})"),
        ));
    }
    Ok(d)
}

fn check_latency(l: &Latency) -> Result<(), ConfigError> {
    match *l {
        Latency::Fixed(d) => {
            delay("delay.latency.fixed", d)?;
        }
        Latency::Uniform { min, max } => {
            delay("delay.latency.uniform.min", min)?;
            delay("delay.latency.uniform.max", max)?;
            if min > max {
                return Err(ConfigError::new(
                    "delay.latency.uniform.max",
                    format!("must be at least min ({min:?}, got {max:?})"),
                ));
            }
        }
        Latency::Normal {
            mean,
            std_dev,
            min,
            max,
        } => {
            delay("delay.latency.normal.mean", mean)?;
            delay("delay.latency.normal.std_dev", std_dev)?;
            delay("delay.latency.normal.min", min)?;
            delay("delay.latency.normal.max", max)?;
            if min > max {
                return Err(ConfigError::new(
                    "delay.latency.normal.max",
                    format!("must be at least min ({min:?}, got {max:?})"),
                ));
            }
            if mean < min || mean > max {
                return Err(ConfigError::new(
                    "delay.latency.normal.mean",
                    format!("must lie between min and max ({min:?}..={max:?}, got {mean:?})"),
                ));
            }
        }
    }
    Ok(())
}

impl FaultConfig {
    /// Validates every value and builds the layer.
    pub fn build(&self) -> Result<FaultLayer, ConfigError> {
        let mut layer = FaultLayer::new();
        if let Some(name) = &self.name {
            palisade_core::config::check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        if let Some(seed) = self.seed {
            layer = layer.seed(seed);
        }
        if let Some(d) = &self.delay {
            let p = probability("delay.probability", d.probability)?;
            check_latency(&d.latency)?;
            layer = layer.delay(d.latency, p);
        }
        if let Some(a) = &self.abort {
            let p = probability("abort.probability", a.probability)?;
            layer = match (a.http_status, a.grpc_status) {
                (Some(s), None) => {
                    let status = StatusCode::from_u16(s)
                        .ok()
                        .filter(|_| (200..600).contains(&s))
                        .ok_or_else(|| {
                            ConfigError::new(
                                "abort.http_status",
                                format!("must be an HTTP status between 200 and 599 (got {s})"),
                            )
                        })?;
                    layer.abort(status, p)
                }
                (None, Some(c)) => {
                    let code = GrpcCode::from_u32(c).ok_or_else(|| {
                        ConfigError::new(
                            "abort.grpc_status",
                            format!("must be a gRPC code between 0 and 16 (got {c})"),
                        )
                    })?;
                    layer.abort_grpc(code, p)
                }
                _ => {
                    return Err(ConfigError::new(
                        "abort",
                        "needs exactly one of `http_status` and `grpc_status`",
                    ));
                }
            };
        }
        if let Some(e) = &self.error {
            layer = layer.error(probability("error.probability", e.probability)?);
        }
        if let Some(t) = &self.throttle {
            let p = probability("throttle.probability", t.probability)?;
            let rate = NonZeroU64::new(t.bytes_per_second)
                .filter(|r| r.get() <= 10 << 30)
                .ok_or_else(|| {
                    ConfigError::new(
                        "throttle.bytes_per_second",
                        format!(
                            "must be between 1 and 10737418240 (got {})",
                            t.bytes_per_second
                        ),
                    )
                })?;
            layer = layer.throttle(rate, p);
        }
        if let Some(max) = self.max_active {
            palisade_core::config::check_range("max_active", max, 0, MAX_ACTIVE_LIMIT)?;
            layer = layer.max_active(max);
        }
        if let Some(n) = self.next_requests {
            layer = layer.next_requests(n);
        }
        if let Some(h) = &self.headers
            && h.enabled
        {
            let mut control = HeaderControl::new()
                .max_delay(delay("headers.max_delay", h.max_delay)?)
                .max_percentage(h.max_percentage);
            palisade_core::config::check_range("headers.max_percentage", h.max_percentage, 0, 100)?;
            if let Some(peers) = &h.trusted_peers {
                control = control
                    .parse_trusted_peers(peers)
                    .map_err(|e| e.within("headers"))?;
            }
            layer = layer.header_control(control);
        }
        Ok(layer)
    }
}

impl TryFrom<FaultConfig> for FaultLayer {
    type Error = ConfigError;
    fn try_from(cfg: FaultConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

impl TryFrom<&FaultConfig> for FaultLayer {
    type Error = ConfigError;
    fn try_from(cfg: &FaultConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(cfg: &FaultConfig) -> String {
        cfg.build().unwrap_err().field().to_owned()
    }

    #[test]
    fn validation_names_the_field_path() {
        let ms = Duration::from_millis;
        let mut cfg = FaultConfig {
            delay: Some(DelayConfig::new(1.5, Latency::fixed(ms(1)))),
            ..FaultConfig::default()
        };
        assert_eq!(field(&cfg), "delay.probability");
        cfg.delay = Some(DelayConfig::new(f64::NAN, Latency::fixed(ms(1))));
        assert_eq!(field(&cfg), "delay.probability");
        cfg.delay = Some(DelayConfig::new(
            0.5,
            Latency::fixed(Duration::from_secs(3601)),
        ));
        assert_eq!(
            cfg.build().unwrap_err().to_string(),
            "invalid configuration `delay.latency.fixed`: must be at most 1h (got 3601s)"
        );
        cfg.delay = Some(DelayConfig::new(0.5, Latency::uniform(ms(20), ms(10))));
        assert_eq!(field(&cfg), "delay.latency.uniform.max");
        cfg.delay = Some(DelayConfig::new(
            0.5,
            Latency::normal(ms(5), ms(1), ms(10), ms(20)),
        ));
        assert_eq!(field(&cfg), "delay.latency.normal.mean");
        cfg.delay = None;
        cfg.abort = Some(AbortConfig::http(0.5, 99));
        assert_eq!(field(&cfg), "abort.http_status");
        cfg.abort = Some(AbortConfig {
            probability: 0.5,
            http_status: None,
            grpc_status: Some(17),
        });
        assert_eq!(field(&cfg), "abort.grpc_status");
        cfg.abort = Some(AbortConfig::default());
        assert_eq!(field(&cfg), "abort");
        cfg.abort = None;
        cfg.throttle = Some(ThrottleConfig {
            probability: 1.0,
            bytes_per_second: 0,
        });
        assert_eq!(field(&cfg), "throttle.bytes_per_second");
        cfg.throttle = None;
        cfg.error = Some(ErrorConfig { probability: -0.1 });
        assert_eq!(field(&cfg), "error.probability");
        cfg.error = None;
        cfg.max_active = Some(MAX_ACTIVE_LIMIT + 1);
        assert_eq!(field(&cfg), "max_active");
        cfg.max_active = None;
        cfg.headers = Some(HeaderConfig {
            enabled: true,
            trusted_peers: Some(vec!["10.0.0.0/8".into(), "x".into()]),
            ..HeaderConfig::default()
        });
        assert_eq!(field(&cfg), "headers.trusted_peers[1]");
        cfg.headers = Some(HeaderConfig {
            enabled: true,
            max_delay: Duration::from_secs(7200),
            ..HeaderConfig::default()
        });
        assert_eq!(field(&cfg), "headers.max_delay");
        cfg.headers = Some(HeaderConfig {
            enabled: true,
            max_percentage: 101,
            ..HeaderConfig::default()
        });
        assert_eq!(field(&cfg), "headers.max_percentage");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_the_fault_section() {
        let cfg: FaultConfig = serde_json::from_str(
            r#"{"seed":42,"max_active":3,
                "delay":{"probability":0.25,"latency":{"uniform":{"min":"50ms","max":"200ms"}}},
                "abort":{"probability":0.1,"grpc_status":14},
                "headers":{"enabled":true,"trusted_peers":["10.0.0.0/8"]}}"#,
        )
        .unwrap();
        assert_eq!(cfg.seed, Some(42));
        assert_eq!(
            cfg.delay.as_ref().unwrap().latency,
            Latency::uniform(Duration::from_millis(50), Duration::from_millis(200))
        );
        assert_eq!(cfg.abort.as_ref().unwrap().grpc_status, Some(14));
        assert!(cfg.build().is_ok());
        let err = serde_json::from_str::<FaultConfig>(r#"{"dealy":{}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `dealy`"), "{err}");
        let cfg: FaultConfig =
            serde_json::from_str(r#"{"delay":{"probability":1,"latency":{"fixed":"2h"}}}"#)
                .unwrap();
        assert_eq!(cfg.build().unwrap_err().field(), "delay.latency.fixed");
    }
}
