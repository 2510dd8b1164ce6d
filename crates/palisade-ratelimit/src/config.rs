//! Plain-data configuration of the rate limiter, deserializable with the `serde` feature.

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::key::{DEFAULT_IPV6_PREFIX, ForwardedIp, ipv6_prefix};
pub use palisade_core::key_config::{ConfiguredKey, ConfiguredKeyValue, KeyConfig};

use crate::layer::{RateLimitLayer, RateLimitMode};
use crate::quota::{Quota, QuotaSet};

/// One quota: `limit` per `window`, at most `burst` at once (default `limit`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Policy name in the headers. Default `"default"`.
    pub name: String,
    /// Units per window, at least 1. Default 100.
    pub limit: u32,
    /// The window, 1 ms to 31 days (`"1s"`, `"1m"`). Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub window: Duration,
    /// Units available at once, at least 1, and at most what refills in
    /// [`MAX_WINDOW`](crate::quota::MAX_WINDOW) (31 days: `burst × window / limit`).
    /// Default: `limit`.
    pub burst: Option<u32>,
    /// Shadow (dry-run) quota: checked and recorded (`would_limit`), never refusing
    /// ([`Quota::shadow`]). At least one quota of a set must be enforced unless the whole
    /// layer is in [`shadow`](RateLimitConfig::shadow) mode. Default `false`.
    pub shadow: bool,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            limit: 100,
            window: Duration::from_secs(60),
            burst: None,
            shadow: false,
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
            shadow: false,
        }
    }

    fn build(&self) -> Result<Quota, ConfigError> {
        if self.burst == Some(0) {
            return Err(ConfigError::new("burst", "must be at least 1"));
        }
        let q = Quota::new(&self.name, self.limit, self.window)?.shadow(self.shadow);
        match self.burst {
            Some(b) => q.try_burst(b),
            None => Ok(q),
        }
    }
}

fn build_set(quotas: &[QuotaConfig], layer_shadow: bool) -> Result<QuotaSet, ConfigError> {
    let mut out = Vec::with_capacity(quotas.len());
    for (i, q) in quotas.iter().enumerate() {
        out.push(q.build().map_err(|e| e.within(&format!("quotas.{i}")))?);
    }
    // Quotas that are all in shadow enforce nothing: that is the layer's shadow mode, to
    // be asked for as such (a typo in one flag must not silently lift every limit).
    if !layer_shadow && !quotas.is_empty() && quotas.iter().all(|q| q.shadow) {
        return Err(ConfigError::new(
            "quotas",
            "at least one quota must be enforced (`shadow = false`); to enforce none, set \
             the layer's `shadow = true`",
        ));
    }
    QuotaSet::new(out)
}

/// Most keys all [`RateLimitConfig::tiers`] may list together.
pub const MAX_TIER_KEYS: usize = 100_000;

/// Quotas for specific keys (e.g. the API keys of paying customers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
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
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// The limiter's instance name, for its events and metrics (`ratelimit="api"`): 1–128
    /// visible ASCII characters. Default: none (`"ratelimit"`).
    pub name: Option<String>,
    /// Where the key comes from. Default global.
    pub key: KeyConfig,
    /// For IP keys (`peer_ip`, `forwarded_ip`): IPv6 clients are grouped by their first
    /// `ipv6_prefix` bits, 32 to 128, so that one client cannot pick fresh addresses out of
    /// its /64 to get fresh buckets (IPv4-mapped IPv6 peers always count as IPv4). Tier keys
    /// are grouped the same way. Default 64; 128 keys each IPv6 address on its own.
    pub ipv6_prefix: u8,
    /// The quotas every request must pass, 1 to 4. Default 100 per minute.
    pub quotas: Vec<QuotaConfig>,
    /// Per-key overrides, [`MAX_TIER_KEYS`] keys at most in all.
    pub tiers: Vec<TierConfig>,
    /// Reject (server) or wait (client). Default reject.
    pub mode: RateLimitMode,
    /// Longest wait in wait mode (`"5s"`), at most 1 h. Default none (only the deadline
    /// bounds it).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub max_wait: Option<Duration>,
    /// RateLimit fields on successful responses. Default `true`.
    pub response_headers: bool,
    /// Legacy `X-RateLimit-*` fields. Default `false`.
    pub legacy_headers: bool,
    /// Shadow (dry-run) mode for the whole layer ([`RateLimitLayer::shadow`]): decisions
    /// are computed and recorded (`would_limit`) but no request is refused. Reject mode
    /// only (a client-side limiter in shadow mode would hold nothing). Default `false`.
    pub shadow: bool,
    /// Most tracked keys, 1 to 100,000,000. Default 100,000.
    pub max_keys: usize,
    /// Interval between idle sweeps, 1 s to 1 h. Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
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
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct RedisConfig {
    /// Redis URL. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// This layer's name in the Redis keys (e.g. the route), 1 to 128 bytes; required, so
    /// that two routes with the same policy names never share buckets. Instances of one
    /// route use the same name.
    pub layer_name: String,
    /// Key prefix. Default `palisade:rl:`.
    pub prefix: String,
    /// Bound on one decision, 1 ms to 60 s. Default 50 ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub timeout: Duration,
    /// What to do when Redis fails: `open` (default), `closed` or `local`.
    pub on_failure: crate::FailAction,
}

#[cfg(feature = "redis")]
impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            layer_name: String::new(),
            prefix: crate::redis::DEFAULT_PREFIX.into(),
            timeout: crate::redis::DEFAULT_TIMEOUT,
            on_failure: crate::FailAction::Open,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            name: None,
            key: KeyConfig::Global,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            quotas: vec![QuotaConfig::default()],
            tiers: Vec::new(),
            mode: RateLimitMode::Reject,
            max_wait: None,
            response_headers: true,
            legacy_headers: false,
            shadow: false,
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
    pub fn build(&self) -> Result<RateLimitLayer<ConfiguredKey>, ConfigError> {
        let key = self.key.build().map_err(|e| e.within("key"))?;
        palisade_core::config::check_range("ipv6_prefix", self.ipv6_prefix, 32, 128)?;
        let key = with_ipv6_prefix(key, self.ipv6_prefix);
        palisade_core::config::check_range("max_keys", self.max_keys, 1, 100_000_000)?;
        palisade_core::config::check_duration(
            "idle_sweep",
            self.idle_sweep,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?;
        if self.shadow && self.mode == RateLimitMode::Wait {
            return Err(ConfigError::new(
                "shadow",
                "applies to `mode = \"reject\"` only: in wait mode a shadow limiter would hold \
                 nothing back, so it would measure nothing useful",
            ));
        }
        let ip_keys = self.key.is_ip();
        let mut layer = RateLimitLayer::new(key, build_set(&self.quotas, self.shadow)?)
            .mode(self.mode)
            .shadow(self.shadow)
            .response_headers(self.response_headers)
            .legacy_headers(self.legacy_headers)
            .max_keys(self.max_keys)
            .idle_sweep(self.idle_sweep);
        if let Some(name) = &self.name {
            palisade_core::config::check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        if let Some(w) = self.max_wait {
            palisade_core::config::check_duration(
                "max_wait",
                w,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?;
            layer = layer.max_wait(w);
        }
        let tier_keys: usize = self.tiers.iter().map(|t| t.keys.len()).sum();
        palisade_core::config::check_range("tiers", tier_keys, 0, MAX_TIER_KEYS)?;
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            palisade_core::config::check_duration(
                "redis.timeout",
                r.timeout,
                Duration::from_millis(1),
                Duration::from_secs(60),
            )?;
            if r.layer_name.is_empty() || r.layer_name.len() > 128 {
                return Err(ConfigError::new(
                    "redis.layer_name",
                    "must be 1 to 128 bytes, e.g. the route's name: it keeps this layer's \
                     Redis buckets apart from other routes' with the same policy names",
                ));
            }
            let backend = crate::redis::RedisBackend::lazy(&r.url)
                .map_err(|e| ConfigError::new("redis.url", format!("must be a Redis URL: {e}")))?
                .prefix(&r.prefix)
                .timeout(r.timeout)
                .on_failure(r.on_failure);
            layer = layer.redis(&r.layer_name, backend);
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            let set = build_set(&tier.quotas, self.shadow)
                .map_err(|e| e.within(&format!("tiers.{i}")))?;
            for k in &tier.keys {
                let key = if ip_keys {
                    let ip = k.parse().map_err(|_| {
                        ConfigError::new(
                            format!("tiers.{i}.keys"),
                            format!("`{k}` is not an IP address"),
                        )
                    })?;
                    ConfiguredKeyValue::Ip(ipv6_prefix(ip, self.ipv6_prefix))
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

/// An IP key extractor grouping IPv6 clients by `bits` (a peer-IP key is a
/// [`ForwardedIp`] trusting no proxy, which is the peer IP); other keys unchanged.
fn with_ipv6_prefix(key: ConfiguredKey, bits: u8) -> ConfiguredKey {
    match key {
        ConfiguredKey::PeerIp => ConfiguredKey::ForwardedIp(ForwardedIp::new([]).ipv6_prefix(bits)),
        ConfiguredKey::ForwardedIp(f) => ConfiguredKey::ForwardedIp(f.ipv6_prefix(bits)),
        other => other,
    }
}

impl TryFrom<RateLimitConfig> for RateLimitLayer<ConfiguredKey> {
    type Error = ConfigError;
    fn try_from(c: RateLimitConfig) -> Result<Self, ConfigError> {
        c.build()
    }
}

impl TryFrom<&RateLimitConfig> for RateLimitLayer<ConfiguredKey> {
    type Error = ConfigError;
    fn try_from(c: &RateLimitConfig) -> Result<Self, ConfigError> {
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
        let c = RateLimitConfig {
            max_wait: Some(Duration::from_secs(3601)),
            ..RateLimitConfig::default()
        };
        assert_eq!(c.build().unwrap_err().field(), "max_wait");
        let c = RateLimitConfig {
            tiers: vec![TierConfig {
                keys: vec!["k".into(); MAX_TIER_KEYS + 1],
                quotas: vec![QuotaConfig::default()],
            }],
            ..RateLimitConfig::default()
        };
        assert_eq!(c.build().unwrap_err().field(), "tiers");
        let c = RateLimitConfig {
            ipv6_prefix: 16,
            ..RateLimitConfig::default()
        };
        assert_eq!(c.build().unwrap_err().field(), "ipv6_prefix");
        // limit 1, window 31 days, burst 10,000: 850 years of tolerance.
        let mut c = RateLimitConfig::default();
        c.quotas[0] = QuotaConfig {
            burst: Some(10_000),
            ..QuotaConfig::new("month", 1, crate::quota::MAX_WINDOW)
        };
        let err = c.clone().build().unwrap_err();
        assert_eq!(err.field(), "quotas.0.burst");
        assert!(err.problem().contains("31 days"), "{err}");
        c.quotas[0].burst = Some(1);
        assert!(c.build().is_ok());
        // Shadow: reject mode only, and never every quota by accident.
        let c = RateLimitConfig {
            shadow: true,
            mode: RateLimitMode::Wait,
            ..RateLimitConfig::default()
        };
        assert_eq!(c.build().unwrap_err().field(), "shadow");
        let mut c = RateLimitConfig::default();
        c.quotas[0].shadow = true;
        assert_eq!(c.clone().build().unwrap_err().field(), "quotas");
        c.tiers.push(TierConfig {
            keys: vec!["a".into()],
            quotas: vec![QuotaConfig {
                shadow: true,
                ..QuotaConfig::default()
            }],
        });
        c.shadow = true;
        assert!(c.clone().build().is_ok());
        c.shadow = false;
        c.quotas[0].shadow = false;
        assert_eq!(c.build().unwrap_err().field(), "tiers.0.quotas");
    }

    #[tokio::test]
    async fn ipv6_clients_share_their_prefix_bucket() {
        use tower::{Layer, ServiceExt};
        let one_per_minute = |key: KeyConfig, ipv6_prefix: u8| RateLimitConfig {
            key,
            ipv6_prefix,
            quotas: vec![QuotaConfig::new("m", 1, Duration::from_secs(60))],
            ..RateLimitConfig::default()
        };
        let req = |peer: &str| {
            let mut r = http::Request::new(());
            r.extensions_mut()
                .insert(palisade_core::key::PeerAddr(peer.parse().unwrap()));
            r
        };
        let ok = tower::service_fn(|_r: http::Request<()>| async {
            Ok::<_, palisade_core::BoxError>(http::Response::new(()))
        });
        for key in [
            KeyConfig::PeerIp,
            KeyConfig::ForwardedIp {
                trusted_proxies: vec!["10.0.0.0/8".into()],
            },
        ] {
            // Default /64: a second address of the same /64 is the same client.
            let svc = one_per_minute(key.clone(), 64).build().unwrap().layer(ok);
            assert!(
                svc.clone()
                    .oneshot(req("[2001:db8:0:1::1]:1"))
                    .await
                    .is_ok()
            );
            let second = svc.clone().oneshot(req("[2001:db8:0:1::2]:1")).await;
            assert!(
                second.unwrap_err().is::<palisade_core::RateLimited>(),
                "{key:?}"
            );
            assert!(
                svc.clone()
                    .oneshot(req("[2001:db8:0:2::1]:1"))
                    .await
                    .is_ok()
            );
            // An IPv4 client seen through a dual-stack listener is one client.
            assert!(
                svc.clone()
                    .oneshot(req("[::ffff:192.0.2.1]:1"))
                    .await
                    .is_ok()
            );
            let v4 = svc.clone().oneshot(req("192.0.2.1:2")).await;
            assert!(
                v4.unwrap_err().is::<palisade_core::RateLimited>(),
                "{key:?}"
            );
            // /128: every address its own bucket.
            let svc = one_per_minute(key.clone(), 128).build().unwrap().layer(ok);
            assert!(
                svc.clone()
                    .oneshot(req("[2001:db8:0:1::1]:1"))
                    .await
                    .is_ok()
            );
            assert!(
                svc.clone()
                    .oneshot(req("[2001:db8:0:1::2]:1"))
                    .await
                    .is_ok()
            );
        }
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
        assert_eq!(c.mode, RateLimitMode::Wait);
        let layer = c.build().unwrap();
        assert_eq!(
            layer.quotas().policy_header(),
            "\"sec\";q=10;w=1, \"hour\";q=1000;w=3600"
        );
        assert!(serde_json::from_str::<RateLimitConfig>(r#"{"bogus":1}"#).is_err());
    }
}
