//! [`IdempotencyConfig`]: plain-data configuration, deserializable with feature `serde`.

use std::time::Duration;

use http::{HeaderName, Method};
use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_instance_name, check_range};
use palisade_core::key_config::KeyConfig;

use crate::key::{DEFAULT_MAX_KEY_LEN, KeyMode};
use crate::layer::{
    DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY, DEFAULT_STORE_RETRY_AFTER,
    DEFAULT_TTL, IdempotencyLayer, MAX_BODY, MAX_KEY_LEN, MAX_STORE_RETRY_AFTER, Settings,
};
use crate::scope::{ConfiguredScope, CredentialScope, DEFAULT_IDENTITY_HEADER};

/// Whose keys are whose: `scope = "credentials"` (default), `scope = "global"` (explicitly
/// unscoped), or a key extractor as the rate limit configures it
/// (`scope = { type = "header", name = "x-tenant" }`, `{ type = "peer_ip" }`,
/// `{ type = "forwarded_ip", trusted_proxies = [...] }`, `{ type = "path" }`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(untagged)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum ScopeConfig {
    /// `"credentials"` or `"global"`.
    Named(ScopeName),
    /// A configured key extractor.
    Key(KeyConfig),
}

impl Default for ScopeConfig {
    fn default() -> Self {
        Self::Named(ScopeName::Credentials)
    }
}

/// The named scopes of [`ScopeConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum ScopeName {
    /// [`CredentialScope`]: `Authorization` plus `identity_header` (default).
    #[default]
    Credentials,
    /// One scope for every caller (keys shared between callers).
    Global,
}

/// Longest accepted TTL (30 days).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Configuration of an [`IdempotencyLayer`], checked once by [`build`](Self::build).
///
/// ```
/// use palisade_idempotency::{IdempotencyConfig, MemoryStore};
/// use std::time::Duration;
/// let mut config = IdempotencyConfig::default();
/// config.lease = Duration::ZERO;
/// let err = config.build(MemoryStore::new()).unwrap_err();
/// assert_eq!(err.field(), "lease");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct IdempotencyConfig {
    /// The layer's instance name, for its events and metrics: 1–128 visible ASCII
    /// characters. Default: none (`"idempotency"`).
    pub name: Option<String>,
    /// Methods the layer applies to (default `["POST", "PATCH"]`).
    pub methods: Vec<String>,
    /// Refuse requests without a key (400).
    pub require_key: bool,
    /// Accept only sf-strings (`"k1"`), not tokens.
    pub strict: bool,
    /// Accept Stripe-style opaque keys (any printable ASCII, unquoted). Not with `strict`.
    pub lenient: bool,
    /// Whose keys are whose (default: the caller's credentials).
    pub scope: ScopeConfig,
    /// Identity header hashed with `Authorization` by the credentials scope (default
    /// `x-api-key`).
    pub identity_header: String,
    /// Longest key in characters, 1–4096 (default 255).
    pub max_key_len: usize,
    /// How long responses are replayed, 1 s–30 days (default 24 h).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub ttl: Duration,
    /// Lease of the in-flight lock, 1 ms–ttl (default 60 s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub lease: Duration,
    /// Largest buffered request body in bytes, 1 B–1 GiB (default 1 MiB).
    pub max_request_body: usize,
    /// Largest stored response body in bytes, 1 B–1 GiB (default 1 MiB).
    pub max_response_body: usize,
    /// Store and replay 5xx (default true).
    pub store_server_errors: bool,
    /// Wait this long for an in-flight original instead of 409, 1 ms–lease (default: don't
    /// wait).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub wait_in_flight: Option<Duration>,
    /// Abandon a handler running longer than this, 1 ms–ttl (default: no limit).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub max_execution_time: Option<Duration>,
    /// `Retry-After` when the store is unavailable, 0–1 h (default 1 s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub store_retry_after: Duration,
    /// Response headers stored and replayed (default: the layer's allowlist).
    pub stored_headers: Option<Vec<String>>,
    /// Request headers included in the fingerprint (default none).
    pub fingerprint_headers: Vec<String>,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            name: None,
            methods: vec!["POST".to_owned(), "PATCH".to_owned()],
            require_key: false,
            strict: false,
            lenient: false,
            scope: ScopeConfig::default(),
            identity_header: DEFAULT_IDENTITY_HEADER.as_str().to_owned(),
            max_key_len: DEFAULT_MAX_KEY_LEN,
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            store_server_errors: true,
            wait_in_flight: None,
            max_execution_time: None,
            store_retry_after: DEFAULT_STORE_RETRY_AFTER,
            stored_headers: None,
            fingerprint_headers: Vec::new(),
        }
    }
}

fn header_names(field: &'static str, names: &[String]) -> Result<Vec<HeaderName>, ConfigError> {
    names
        .iter()
        .map(|n| palisade_core::config::header_name(field, n))
        .collect()
}

impl IdempotencyConfig {
    /// Validates every field and builds the layer over `store`, scoped as `scope` says.
    pub fn build<St>(
        self,
        store: St,
    ) -> Result<IdempotencyLayer<St, ConfiguredScope>, ConfigError> {
        let methods = self
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    ConfigError::new("methods", format!("`{m}` is not an HTTP method"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.strict && self.lenient {
            return Err(ConfigError::new(
                "lenient",
                "cannot be combined with `strict`",
            ));
        }
        let identity =
            palisade_core::config::header_name("identity_header", &self.identity_header)?;
        let scope = match &self.scope {
            ScopeConfig::Named(ScopeName::Credentials) => {
                ConfiguredScope::Credentials(CredentialScope::new().identity_header(identity))
            }
            ScopeConfig::Named(ScopeName::Global) => {
                ConfiguredScope::Key(palisade_core::key_config::ConfiguredKey::Global)
            }
            ScopeConfig::Key(k) => ConfiguredScope::Key(k.build().map_err(|e| e.within("scope"))?),
        };
        check_range("max_key_len", self.max_key_len, 1, MAX_KEY_LEN)?;
        check_duration("ttl", self.ttl, Duration::from_secs(1), MAX_TTL)?;
        check_duration("lease", self.lease, Duration::from_millis(1), self.ttl)?;
        check_range("max_request_body", self.max_request_body, 1, MAX_BODY)?;
        check_range("max_response_body", self.max_response_body, 1, MAX_BODY)?;
        if let Some(w) = self.wait_in_flight {
            check_duration("wait_in_flight", w, Duration::from_millis(1), self.lease)?;
        }
        if let Some(m) = self.max_execution_time {
            check_duration("max_execution_time", m, Duration::from_millis(1), self.ttl)?;
        }
        check_duration(
            "store_retry_after",
            self.store_retry_after,
            Duration::ZERO,
            MAX_STORE_RETRY_AFTER,
        )?;
        let defaults = Settings::default();
        let settings = Settings {
            methods,
            require_key: self.require_key,
            mode: if self.strict {
                KeyMode::Strict
            } else if self.lenient {
                KeyMode::Lenient
            } else {
                KeyMode::Structured
            },
            max_key_len: self.max_key_len,
            ttl: self.ttl,
            lease: self.lease,
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            store_server_errors: self.store_server_errors,
            wait_in_flight: self.wait_in_flight,
            stored_headers: match &self.stored_headers {
                Some(names) => header_names("stored_headers", names)?,
                None => defaults.stored_headers,
            },
            fingerprint_headers: header_names("fingerprint_headers", &self.fingerprint_headers)?,
            store_retry_after: self.store_retry_after,
            renew_lease: defaults.renew_lease,
            max_execution_time: self.max_execution_time,
        };
        let mut layer = IdempotencyLayer::new(store).scope(scope);
        if let Some(name) = &self.name {
            check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        layer.settings = settings;
        Ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn validates_each_field() {
        let ok = IdempotencyConfig::default()
            .build(MemoryStore::new())
            .unwrap();
        assert_eq!(ok.settings.methods, vec![Method::POST, Method::PATCH]);
        let cases: Vec<(&str, Box<dyn Fn(&mut IdempotencyConfig)>)> = vec![
            ("methods", Box::new(|c| c.methods = vec!["P OST".into()])),
            ("max_key_len", Box::new(|c| c.max_key_len = 0)),
            ("ttl", Box::new(|c| c.ttl = Duration::ZERO)),
            (
                "lease",
                Box::new(|c| c.lease = Duration::from_secs(25 * 3600)),
            ),
            ("max_request_body", Box::new(|c| c.max_request_body = 0)),
            ("max_response_body", Box::new(|c| c.max_response_body = 0)),
            (
                "wait_in_flight",
                Box::new(|c| c.wait_in_flight = Some(Duration::from_secs(3600))),
            ),
            (
                "stored_headers",
                Box::new(|c| c.stored_headers = Some(vec!["a b".into()])),
            ),
            (
                "fingerprint_headers",
                Box::new(|c| c.fingerprint_headers = vec![String::new()]),
            ),
            (
                "ttl",
                Box::new(|c| c.ttl = MAX_TTL + Duration::from_secs(1)),
            ),
            ("max_key_len", Box::new(|c| c.max_key_len = 4097)),
            (
                "max_request_body",
                Box::new(|c| c.max_request_body = (1 << 30) + 1),
            ),
            (
                "max_response_body",
                Box::new(|c| c.max_response_body = (1 << 30) + 1),
            ),
            (
                "max_execution_time",
                Box::new(|c| c.max_execution_time = Some(Duration::from_secs(25 * 3600))),
            ),
            (
                "max_execution_time",
                Box::new(|c| c.max_execution_time = Some(Duration::ZERO)),
            ),
            (
                "store_retry_after",
                Box::new(|c| c.store_retry_after = Duration::from_secs(3601)),
            ),
            (
                "lenient",
                Box::new(|c| {
                    c.strict = true;
                    c.lenient = true;
                }),
            ),
            (
                "identity_header",
                Box::new(|c| c.identity_header = "a b".into()),
            ),
            (
                "scope.name",
                Box::new(|c| {
                    c.scope = ScopeConfig::Key(KeyConfig::Header { name: "a b".into() });
                }),
            ),
        ];
        for (field, f) in cases {
            let mut c = IdempotencyConfig::default();
            f(&mut c);
            assert_eq!(c.build(MemoryStore::new()).unwrap_err().field(), field);
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_human_durations() {
        let c: IdempotencyConfig = serde_json::from_str(
            r#"{"ttl":"1h","lease":"30s","wait_in_flight":"2s","methods":["post"],"strict":true}"#,
        )
        .unwrap();
        assert_eq!(c.ttl, Duration::from_secs(3600));
        assert_eq!(c.wait_in_flight, Some(Duration::from_secs(2)));
        let layer = c.build(MemoryStore::new()).unwrap();
        assert_eq!(layer.settings.methods, vec![Method::POST]);
        assert!(serde_json::from_str::<IdempotencyConfig>(r#"{"tll":"1h"}"#).is_err());
        let c: IdempotencyConfig = serde_json::from_str(r#"{"scope":"global"}"#).unwrap();
        assert_eq!(c.scope, ScopeConfig::Named(ScopeName::Global));
        let c: IdempotencyConfig =
            serde_json::from_str(r#"{"scope":{"type":"header","name":"x-tenant"}}"#).unwrap();
        assert_eq!(
            c.scope,
            ScopeConfig::Key(KeyConfig::Header {
                name: "x-tenant".into()
            })
        );
        assert_eq!(
            IdempotencyConfig::default().scope,
            ScopeConfig::Named(ScopeName::Credentials)
        );
        assert!(serde_json::from_str::<IdempotencyConfig>(r#"{"scope":"nobody"}"#).is_err());
    }
}
