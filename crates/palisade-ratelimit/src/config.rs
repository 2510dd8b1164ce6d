//! Plain-data configuration of the rate limiter, deserializable with the `serde` feature.

use std::time::Duration;

use palisade_core::ConfigError;
pub use palisade_core::key_config::{ConfiguredKey, ConfiguredKeyValue, KeyConfig};

use crate::layer::{Mode, RateLimitLayer};
use crate::quota::{Quota, QuotaSet};

/// One quota: `limit` per `window`, at most `burst` at once (default `limit`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Policy name in the headers. Default `"default"`.
    pub name: String,
    /// Units per window, at least 1. Default 100.
    pub limit: u32,
    /// The window, 1 ms to 31 days (`"1s"`, `"1m"`). Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// Units available at once. Default: `limit`.
    pub burst: Option<u32>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            limit: 100,
            window: Duration::from_secs(60),
            burst: None,
        }
    }
}

impl QuotaConfig {
    /// `limit` per `window`, named `name`.
    pub fn new(name: &str, limit: u32, window: Duration) -> Self {
        Self {
            name: name.into(),
            limit,
            window,
            burst: None,
        }
    }

    fn build(&self) -> Result<Quota, ConfigError> {
        if self.burst == Some(0) {
            return Err(ConfigError::new("burst", "must be at least 1"));
        }
        let q = Quota::new(&self.name, self.limit, self.window)?;
        Ok(match self.burst {
            Some(b) => q.burst(b),
            None => q,
        })
    }
}

fn build_set(quotas: &[QuotaConfig]) -> Result<QuotaSet, ConfigError> {
    let mut out = Vec::with_capacity(quotas.len());
    for (i, q) in quotas.iter().enumerate() {
        out.push(q.build().map_err(|e| e.within(&format!("quotas.{i}")))?);
    }
    QuotaSet::new(out)
}

/// Quotas for specific keys (e.g. the API keys of paying customers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct TierConfig {
    /// The keys (IP addresses for IP keys, header values or paths otherwise).
    pub keys: Vec<String>,
    /// Their quotas.
    pub quotas: Vec<QuotaConfig>,
}

/// Configuration of a [`RateLimitLayer`], e.g. one route's entry in a config file:
///
/// ```toml
/// key = { type = "header", name = "x-api-key" }
/// quotas = [{ name = "sec", limit = 10, window = "1s" }, { name = "hour", limit = 1000, window = "1h" }]
/// tiers = [{ keys = ["gold-1"], quotas = [{ name = "gold", limit = 100, window = "1s" }] }]
/// ```
///
/// Validated once by [`RateLimitConfig::build`], never per request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Where the key comes from. Default global.
    pub key: KeyConfig,
    /// The quotas every request must pass, 1 to 4. Default 100 per minute.
    pub quotas: Vec<QuotaConfig>,
    /// Per-key overrides.
    pub tiers: Vec<TierConfig>,
    /// Reject (server) or wait (client). Default reject.
    pub mode: Mode,
    /// Longest wait in wait mode (`"5s"`). Default none (only the deadline bounds it).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_wait: Option<Duration>,
    /// RateLimit fields on successful responses. Default `true`.
    pub response_headers: bool,
    /// Legacy `X-RateLimit-*` fields. Default `false`.
    pub legacy_headers: bool,
    /// Most tracked keys, 1 to 100,000,000. Default 100,000.
    pub max_keys: usize,
    /// Interval between idle sweeps, 1 s to 1 h. Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub idle_sweep: Duration,
    /// Share the limits through Redis (feature `redis`). Default none (in memory).
    #[cfg(feature = "redis")]
    pub redis: Option<RedisConfig>,
}

/// Redis settings of a [`RateLimitConfig`].
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Redis URL. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Key prefix. Default `palisade:rl:`.
    pub prefix: String,
    /// Bound on one decision, 1 ms to 60 s. Default 50 ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Duration,
    /// What to do when Redis fails: `open` (default), `closed` or `local`.
    pub on_failure: crate::FailAction,
}

#[cfg(feature = "redis")]
impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: crate::redis::DEFAULT_PREFIX.into(),
            timeout: crate::redis::DEFAULT_TIMEOUT,
            on_failure: crate::FailAction::Open,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            key: KeyConfig::Global,
            quotas: vec![QuotaConfig::default()],
            tiers: Vec::new(),
            mode: Mode::Reject,
            max_wait: None,
            response_headers: true,
            legacy_headers: false,
            max_keys: crate::memory::DEFAULT_MAX_KEYS,
            idle_sweep: crate::memory::DEFAULT_IDLE_SWEEP,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl RateLimitConfig {
    /// Checks every value and builds the layer. With a `redis` section, call it inside a
    /// Tokio runtime (the connection is made lazily, on the first request).
    pub fn build(self) -> Result<RateLimitLayer<ConfiguredKey>, ConfigError> {
        let key = self.key.build().map_err(|e| e.within("key"))?;
        palisade_core::config::check_range("max_keys", self.max_keys, 1, 100_000_000)?;
        palisade_core::config::check_duration(
            "idle_sweep",
            self.idle_sweep,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?;
        let ip_keys = self.key.is_ip();
        let mut layer = RateLimitLayer::new(key, build_set(&self.quotas)?)
            .mode(self.mode)
            .response_headers(self.response_headers)
            .legacy_headers(self.legacy_headers)
            .max_keys(self.max_keys)
            .idle_sweep(self.idle_sweep);
        if let Some(w) = self.max_wait {
            layer = layer.max_wait(w);
        }
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            palisade_core::config::check_duration(
                "redis.timeout",
                r.timeout,
                Duration::from_millis(1),
                Duration::from_secs(60),
            )?;
            let backend = crate::redis::RedisBackend::lazy(&r.url)
                .map_err(|e| ConfigError::new("redis.url", format!("must be a Redis URL: {e}")))?
                .prefix(&r.prefix)
                .timeout(r.timeout)
                .on_failure(r.on_failure);
            layer = layer.redis(backend);
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            let set = build_set(&tier.quotas).map_err(|e| e.within(&format!("tiers.{i}")))?;
            for k in &tier.keys {
                let key = if ip_keys {
                    ConfiguredKeyValue::Ip(k.parse().map_err(|_| {
                        ConfigError::new(
                            format!("tiers.{i}.keys"),
                            format!("`{k}` is not an IP address"),
                        )
                    })?)
                } else if matches!(self.key, KeyConfig::Global) {
                    ConfiguredKeyValue::Global
                } else {
                    ConfiguredKeyValue::Str(k.clone())
                };
                layer = layer.tier(&key, set.clone());
            }
        }
        Ok(layer)
    }
}

impl TryFrom<RateLimitConfig> for RateLimitLayer<ConfiguredKey> {
    type Error = ConfigError;
    fn try_from(c: RateLimitConfig) -> Result<Self, ConfigError> {
        c.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let mut c = RateLimitConfig::default();
        c.quotas[0].limit = 0;
        assert_eq!(c.build().unwrap_err().field(), "quotas.0.limit");
        let mut c = RateLimitConfig::default();
        c.tiers.push(TierConfig {
            keys: vec!["a".into()],
            quotas: vec![],
        });
        assert_eq!(c.build().unwrap_err().field(), "tiers.0.quotas");
        let c = RateLimitConfig {
            key: KeyConfig::PeerIp,
            tiers: vec![TierConfig {
                keys: vec!["nope".into()],
                quotas: vec![QuotaConfig::default()],
            }],
            ..RateLimitConfig::default()
        };
        assert_eq!(c.build().unwrap_err().field(), "tiers.0.keys");
        let c = RateLimitConfig {
            max_keys: 0,
            ..RateLimitConfig::default()
        };
        assert_eq!(c.build().unwrap_err().field(), "max_keys");
        assert!(RateLimitConfig::default().build().is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_with_human_durations() {
        let c: RateLimitConfig = serde_json::from_str(
            r#"{"key":{"type":"header","name":"x-api-key"},
                "quotas":[{"name":"sec","limit":10,"window":"1s"},{"name":"hour","limit":1000,"window":"1h"}],
                "mode":"wait","max_wait":"250ms"}"#,
        )
        .unwrap();
        assert_eq!(c.quotas[1].window, Duration::from_secs(3600));
        assert_eq!(c.max_wait, Some(Duration::from_millis(250)));
        assert_eq!(c.mode, Mode::Wait);
        let layer = c.build().unwrap();
        assert_eq!(
            layer.quotas().policy_header(),
            "\"sec\";q=10;w=1, \"hour\";q=1000;w=3600"
        );
        assert!(serde_json::from_str::<RateLimitConfig>(r#"{"bogus":1}"#).is_err());
    }
}
