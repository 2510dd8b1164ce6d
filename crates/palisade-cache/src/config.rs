//! [`CacheConfig`]: checked configuration of an in-memory [`CacheLayer`].

use std::time::Duration;

use http::HeaderName;
use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_instance_name, check_range};

use crate::freshness::Heuristic;
use crate::layer::{CacheLayer, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TTL, DEFAULT_MAX_VARIANTS};
use crate::memory::MemoryStore;

/// Smallest `max_bytes`: 64 KiB.
pub const MIN_MAX_BYTES: u64 = 64 << 10;
/// Largest `max_bytes`: 64 GiB.
pub const MAX_MAX_BYTES: u64 = 64 << 30;
/// Largest `max_body_bytes`: 64 MiB.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Configuration of an in-memory cache, deserializable with feature `serde`
/// (`max_ttl = "1d"`), checked by [`build`](Self::build).
///
/// ```
/// use palisade_cache::CacheConfig;
/// let mut config = CacheConfig::default();
/// config.max_body_bytes = 0;
/// let err = config.build().unwrap_err();
/// assert_eq!(err.field(), "max_body_bytes");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct CacheConfig {
    /// The layer's instance name, for its events and metrics: 1–128 visible ASCII
    /// characters. Default: none (`"cache"`).
    pub name: Option<String>,
    /// Bytes the store may hold (64 KiB – 64 GiB; default 64 MiB).
    pub max_bytes: u64,
    /// Largest body stored (1 B – 64 MiB and at most `max_bytes`; default 1 MiB).
    pub max_body_bytes: usize,
    /// Longest an entry stays stored (1 s – 365 days; default 1 day).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub max_ttl: Duration,
    /// `Vary` variants kept per URI (1 – 64; default 8).
    pub max_variants: usize,
    /// Heuristic freshness (RFC 9111 §4.2.2) on or off (default off).
    pub heuristic: bool,
    /// Percent of `Date` − `Last-Modified` (1 – 100; default 10).
    pub heuristic_percent: u32,
    /// Cap of a heuristic lifetime (1 s – 365 days; default 1 day).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub heuristic_max: Duration,
    /// Status header name (`x-cache`), off when `None`.
    pub status_header: Option<String>,
    /// Request headers added to the key (at most 16).
    pub key_headers: Vec<String>,
    /// Targeted cache-control field (RFC 9213; default `cdn-cache-control`), off when `None`.
    pub targeted_field: Option<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            name: None,
            max_bytes: 64 << 20,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_ttl: DEFAULT_MAX_TTL,
            max_variants: DEFAULT_MAX_VARIANTS,
            heuristic: false,
            heuristic_percent: 10,
            heuristic_max: Duration::from_secs(86400),
            status_header: None,
            key_headers: Vec::new(),
            targeted_field: Some("cdn-cache-control".to_owned()),
        }
    }
}

fn header_name(field: &'static str, value: &str) -> Result<HeaderName, ConfigError> {
    palisade_core::config::header_name(field, value)
}

impl CacheConfig {
    /// Checks every value and builds the layer; the error names the field.
    pub fn build(&self) -> Result<CacheLayer<MemoryStore>, ConfigError> {
        check_range("max_bytes", self.max_bytes, MIN_MAX_BYTES, MAX_MAX_BYTES)?;
        let body_cap = MAX_BODY_BYTES.min(usize::try_from(self.max_bytes).unwrap_or(usize::MAX));
        check_range("max_body_bytes", self.max_body_bytes, 1, body_cap)?;
        let year = Duration::from_secs(365 * 86400);
        check_duration("max_ttl", self.max_ttl, Duration::from_secs(1), year)?;
        check_range("max_variants", self.max_variants, 1, 64)?;
        check_range("heuristic_percent", self.heuristic_percent, 1, 100)?;
        check_duration(
            "heuristic_max",
            self.heuristic_max,
            Duration::from_secs(1),
            year,
        )?;
        check_range("key_headers", self.key_headers.len(), 0, 16)?;
        let mut layer = CacheLayer::memory(self.max_bytes)
            .max_body_bytes(self.max_body_bytes)
            .max_ttl(self.max_ttl)
            .max_variants(self.max_variants);
        if let Some(name) = &self.name {
            check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        if self.heuristic {
            layer = layer.heuristic(Heuristic {
                percent: self.heuristic_percent,
                max: self.heuristic_max,
            });
        }
        if let Some(name) = &self.status_header {
            layer = layer.status_header(header_name("status_header", name)?);
        }
        for name in &self.key_headers {
            layer = layer.key_header(header_name("key_headers", name)?);
        }
        let targeted = self
            .targeted_field
            .as_deref()
            .map(|n| header_name("targeted_field", n))
            .transpose()?;
        Ok(layer.targeted_field(targeted))
    }
}

impl TryFrom<&CacheConfig> for CacheLayer<MemoryStore> {
    type Error = ConfigError;

    fn try_from(config: &CacheConfig) -> Result<Self, ConfigError> {
        config.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(f: impl FnOnce(&mut CacheConfig)) -> String {
        let mut c = CacheConfig::default();
        f(&mut c);
        c.build().unwrap_err().field().to_owned()
    }

    #[test]
    fn every_bound_names_its_field() {
        assert!(CacheConfig::default().build().is_ok());
        assert_eq!(field_of(|c| c.max_bytes = 1), "max_bytes");
        assert_eq!(field_of(|c| c.max_bytes = u64::MAX), "max_bytes");
        assert_eq!(field_of(|c| c.max_body_bytes = 0), "max_body_bytes");
        assert_eq!(
            field_of(|c| {
                c.max_bytes = MIN_MAX_BYTES;
                c.max_body_bytes = 1 << 20;
            }),
            "max_body_bytes"
        );
        assert_eq!(field_of(|c| c.max_ttl = Duration::ZERO), "max_ttl");
        assert_eq!(field_of(|c| c.max_variants = 0), "max_variants");
        assert_eq!(field_of(|c| c.heuristic_percent = 0), "heuristic_percent");
        assert_eq!(
            field_of(|c| c.heuristic_max = Duration::from_secs(400 * 86400)),
            "heuristic_max"
        );
        assert_eq!(
            field_of(|c| c.status_header = Some("bad header".into())),
            "status_header"
        );
        assert_eq!(
            field_of(|c| c.key_headers = vec!["ok".into(), "b@d\n".into()]),
            "key_headers"
        );
        assert_eq!(
            field_of(|c| c.key_headers = (0..17).map(|i| format!("x-{i}")).collect()),
            "key_headers"
        );
        assert_eq!(
            field_of(|c| c.targeted_field = Some(String::new())),
            "targeted_field"
        );
    }
}
