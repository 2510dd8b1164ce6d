//! [`KeyConfig`]: which key extractor a configuration file asks for, and the
//! [`ConfiguredKey`] it builds. Shared by every layer whose config chooses a key (the rate
//! limit's `key`, the idempotency layer's `scope`).

use std::net::IpAddr;

use crate::config::ConfigError;
use crate::key::{ForwardedIp, HeaderKey, KeyError, KeyExtractor, PathKey, PeerIp};
use crate::request::RequestParts;

/// Where a key comes from, in configuration files:
///
/// ```toml
/// key = { type = "header", name = "x-api-key" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum KeyConfig {
    /// One bucket for everyone.
    #[default]
    Global,
    /// The TCP peer IP.
    PeerIp,
    /// The client IP behind trusted proxies (`X-Forwarded-For`).
    ForwardedIp {
        /// Trusted proxy CIDRs.
        trusted_proxies: Vec<String>,
    },
    /// A request header, e.g. `x-api-key`.
    Header {
        /// The header name.
        name: String,
    },
    /// The request path.
    Path,
}

impl KeyConfig {
    /// Checks the values and builds the extractor. Errors name the field relative to the
    /// key (`name`, `trusted_proxies`); callers add their section with
    /// [`ConfigError::within`].
    pub fn build(&self) -> Result<ConfiguredKey, ConfigError> {
        Ok(match self {
            Self::Global => ConfiguredKey::Global,
            Self::PeerIp => ConfiguredKey::PeerIp,
            Self::ForwardedIp { trusted_proxies } => {
                ConfiguredKey::ForwardedIp(ForwardedIp::parse(trusted_proxies)?)
            }
            Self::Header { name } => {
                ConfiguredKey::Header(HeaderKey::new(crate::config::header_name("name", name)?))
            }
            Self::Path => ConfiguredKey::Path,
        })
    }

    /// Whether the keys are IP addresses.
    pub fn is_ip(&self) -> bool {
        matches!(self, Self::PeerIp | Self::ForwardedIp { .. })
    }
}

/// The key extractor a [`KeyConfig`] builds.
#[derive(Debug, Clone)]
pub enum ConfiguredKey {
    /// [`GlobalKey`](crate::key::GlobalKey).
    Global,
    /// [`PeerIp`].
    PeerIp,
    /// [`ForwardedIp`].
    ForwardedIp(ForwardedIp),
    /// [`HeaderKey`].
    Header(HeaderKey),
    /// [`PathKey`].
    Path,
}

/// A key extracted by a [`ConfiguredKey`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfiguredKeyValue {
    /// The global key.
    Global,
    /// An IP address.
    Ip(IpAddr),
    /// A header value or path.
    Str(String),
}

/// Storage encoding (see [`crate::storage_key`]): the global key as `_`, an IP address as its
/// canonical text, a header value or path as its escaped text.
impl crate::storage_key::StorageKey for ConfiguredKeyValue {
    fn write_storage_key(&self, out: &mut String) {
        match self {
            Self::Global => ().write_storage_key(out),
            Self::Ip(ip) => ip.write_storage_key(out),
            Self::Str(s) => s.write_storage_key(out),
        }
    }
}

impl<R: RequestParts> KeyExtractor<R> for ConfiguredKey {
    type Key = ConfiguredKeyValue;
    fn extract(&self, req: &R) -> Result<ConfiguredKeyValue, KeyError> {
        Ok(match self {
            Self::Global => ConfiguredKeyValue::Global,
            Self::PeerIp => ConfiguredKeyValue::Ip(PeerIp.extract(req)?),
            Self::ForwardedIp(f) => ConfiguredKeyValue::Ip(f.extract(req)?),
            Self::Header(h) => ConfiguredKeyValue::Str(h.extract(req)?),
            Self::Path => ConfiguredKeyValue::Str(PathKey.extract(req)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_names_fields() {
        let bad = KeyConfig::Header { name: "a b".into() };
        assert_eq!(bad.build().unwrap_err().within("key").field(), "key.name");
        let bad = KeyConfig::ForwardedIp {
            trusted_proxies: vec!["nope".into()],
        };
        assert_eq!(
            bad.build().unwrap_err().within("key").field(),
            "key.trusted_proxies[0]"
        );
        let h = KeyConfig::Header {
            name: "x-api-key".into(),
        }
        .build()
        .unwrap();
        let req = http::Request::get("/")
            .header("x-api-key", "k1")
            .body(())
            .unwrap();
        assert_eq!(
            h.extract(&req).unwrap(),
            ConfiguredKeyValue::Str("k1".into())
        );
        assert!(KeyConfig::PeerIp.is_ip());
    }
}
