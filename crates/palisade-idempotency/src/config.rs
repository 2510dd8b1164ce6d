//! [`IdempotencyConfig`]: plain-data configuration, deserializable with feature `serde`.

use std::time::Duration;

use http::{HeaderName, Method};
use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};
use palisade_core::key::GlobalKey;

use crate::key::DEFAULT_MAX_KEY_LEN;
use crate::layer::{
    DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY, DEFAULT_TTL,
    IdempotencyLayer, Settings,
};

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
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct IdempotencyConfig {
    /// Methods the layer applies to (default `["POST", "PATCH"]`).
    pub methods: Vec<String>,
    /// Refuse requests without a key (400).
    pub require_key: bool,
    /// Accept only sf-strings (`"k1"`).
    pub strict: bool,
    /// Longest key in characters, 1–4096 (default 255).
    pub max_key_len: usize,
    /// How long responses are replayed, 1 s–30 days (default 24 h).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub ttl: Duration,
    /// Lease of the in-flight lock, 1 ms–ttl (default 60 s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub lease: Duration,
    /// Largest buffered request body in bytes, 1 B–1 GiB (default 1 MiB).
    pub max_request_body: usize,
    /// Largest stored response body in bytes, 1 B–1 GiB (default 1 MiB).
    pub max_response_body: usize,
    /// Store and replay 5xx (default true).
    pub store_server_errors: bool,
    /// Wait this long for an in-flight original instead of 409 (default: don't wait).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub wait_in_flight: Option<Duration>,
    /// Response headers stored and replayed (default: the layer's allowlist).
    pub stored_headers: Option<Vec<String>>,
    /// Request headers included in the fingerprint (default none).
    pub fingerprint_headers: Vec<String>,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            methods: vec!["POST".to_owned(), "PATCH".to_owned()],
            require_key: false,
            strict: false,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            store_server_errors: true,
            wait_in_flight: None,
            stored_headers: None,
            fingerprint_headers: Vec::new(),
        }
    }
}

fn header_names(field: &'static str, names: &[String]) -> Result<Vec<HeaderName>, ConfigError> {
    names
        .iter()
        .map(|n| {
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| ConfigError::new(field, format!("`{n}` is not a valid header name")))
        })
        .collect()
}

impl IdempotencyConfig {
    /// Validates every field and builds the layer over `store` (unscoped; add
    /// [`scope`](IdempotencyLayer::scope)).
    pub fn build<St>(self, store: St) -> Result<IdempotencyLayer<St, GlobalKey>, ConfigError> {
        let methods = self
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    ConfigError::new("methods", format!("`{m}` is not an HTTP method"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_range("max_key_len", self.max_key_len, 1, 4096)?;
        check_duration("ttl", self.ttl, Duration::from_secs(1), MAX_TTL)?;
        check_duration("lease", self.lease, Duration::from_millis(1), self.ttl)?;
        check_range("max_request_body", self.max_request_body, 1, 1 << 30)?;
        check_range("max_response_body", self.max_response_body, 1, 1 << 30)?;
        if let Some(w) = self.wait_in_flight {
            check_duration("wait_in_flight", w, Duration::from_millis(1), self.lease)?;
        }
        let defaults = Settings::default();
        let settings = Settings {
            methods,
            require_key: self.require_key,
            mode: if self.strict {
                crate::key::KeyMode::Strict
            } else {
                crate::key::KeyMode::Lenient
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
            store_retry_after: defaults.store_retry_after,
            renew_lease: defaults.renew_lease,
        };
        let mut layer = IdempotencyLayer::new(store);
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
    }
}
