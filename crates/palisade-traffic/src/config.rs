//! Plain-data configuration of a [`Split`](crate::Split) (deserializable behind `serde`).

use http::{HeaderName, Method};
use palisade_core::ConfigError;

use crate::access::OverrideAccess;
use crate::route::Rule;
use crate::split::SplitBuilder;

/// One match rule as data: exactly one of `path_prefix` or `methods`, routing to `arm`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct RuleConfig {
    /// Path prefix (segment-wise), e.g. `"/orders"`.
    pub path_prefix: Option<String>,
    /// Methods, e.g. `["GET", "HEAD"]`.
    pub methods: Option<Vec<String>>,
    /// Target arm name.
    pub arm: String,
}

impl RuleConfig {
    /// A path-prefix rule.
    pub fn path_prefix(prefix: impl Into<String>, arm: impl Into<String>) -> Self {
        Self {
            path_prefix: Some(prefix.into()),
            methods: None,
            arm: arm.into(),
        }
    }

    /// A method rule.
    pub fn methods(methods: &[&str], arm: impl Into<String>) -> Self {
        Self {
            path_prefix: None,
            methods: Some(methods.iter().map(|m| (*m).to_owned()).collect()),
            arm: arm.into(),
        }
    }

    fn build(self) -> Result<Rule, ConfigError> {
        match (self.path_prefix, self.methods) {
            (Some(p), None) if p.starts_with('/') => Ok(Rule::path_prefix(p, self.arm)),
            (Some(_), None) => Err(ConfigError::new("rules.path_prefix", "must start with '/'")),
            (None, Some(ms)) if !ms.is_empty() => {
                let ms = ms
                    .iter()
                    .map(|m| {
                        Method::from_bytes(m.as_bytes()).map_err(|_| {
                            ConfigError::new("rules.methods", format!("invalid method {m:?}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Rule::methods(ms, self.arm))
            }
            _ => Err(ConfigError::new(
                "rules",
                "each rule needs exactly one of path_prefix or a non-empty methods",
            )),
        }
    }
}

/// Configuration of a split's routing; the arms themselves are services, added in code.
///
/// ```
/// use palisade_traffic::{RuleConfig, Split, SplitConfig};
/// # let svc = tower::service_fn(|_r: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
/// let mut cfg = SplitConfig::default();
/// cfg.weights = Some(vec![90, 10]);
/// cfg.rules.push(RuleConfig::path_prefix("/orders", "canary"));
/// cfg.response_header = Some("x-served-by".into());
/// let (_split, handle) = Split::builder()
///     .arm("stable", svc.clone())
///     .arm("canary", svc)
///     .with_config(cfg)
///     .unwrap()
///     .build()
///     .unwrap();
/// assert_eq!(handle.weights(), vec![90, 10]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct SplitConfig {
    /// The split's instance name, for its events and metrics (`traffic="checkout"`): 1–128
    /// visible ASCII characters. Default: none (`"traffic"`).
    pub name: Option<String>,
    /// Relative weights per arm (default: all to the first arm).
    pub weights: Option<Vec<u32>>,
    /// Match rules, in order.
    pub rules: Vec<RuleConfig>,
    /// Override header name (off by default; needs `override_access`).
    pub override_header: Option<String>,
    /// Override cookie name (off by default; needs `override_access`).
    pub override_cookie: Option<String>,
    /// Who may use the override header or cookie; required with either.
    pub override_access: Option<OverrideAccessConfig>,
    /// Response header naming the arm that served.
    pub response_header: Option<String>,
    /// Random seed.
    pub seed: Option<u64>,
}

/// [`OverrideAccess`] as data:
///
/// ```toml
/// override_access = { type = "secret", header = "x-override-token", secret = "…16 to 256 bytes…" }
/// override_access = { type = "trusted_peers", cidrs = ["10.0.0.0/8"] }
/// override_access = { type = "anyone" }   # only behind an edge that strips the override
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum OverrideAccessConfig {
    /// [`OverrideAccess::secret`].
    Secret {
        /// The header carrying the secret.
        header: String,
        /// The shared secret, 16 to 256 bytes.
        secret: String,
    },
    /// [`OverrideAccess::trusted_peers`].
    TrustedPeers {
        /// Trusted peer networks.
        cidrs: Vec<String>,
    },
    /// [`OverrideAccess::anyone`].
    Anyone,
}

impl OverrideAccessConfig {
    /// Checks the values and builds the [`OverrideAccess`].
    ///
    /// # Errors
    /// A bad header name, a secret outside 16–256 bytes, a bad or empty CIDR list; the
    /// field is named under `override_access`.
    pub fn build(&self) -> Result<OverrideAccess, ConfigError> {
        match self {
            Self::Secret { header: h, secret } => {
                OverrideAccess::secret(header("override_access.header", h)?, secret)
            }
            Self::TrustedPeers { cidrs } => OverrideAccess::trusted_peers(cidrs),
            Self::Anyone => Ok(OverrideAccess::anyone()),
        }
    }
}

fn header(field: &'static str, v: &str) -> Result<HeaderName, ConfigError> {
    palisade_core::config::header_name(field, v)
}

impl<S, K, C> SplitBuilder<S, K, C> {
    /// Applies `config` (validated here; arm names in rules and the weight count are checked
    /// by [`build`](Self::build)).
    pub fn with_config(mut self, config: SplitConfig) -> Result<Self, ConfigError> {
        if let Some(name) = config.name {
            palisade_core::config::check_instance_name("name", &name)?;
            self = self.name(name);
        }
        if let Some(w) = config.weights {
            self = self.weights(w);
        }
        for r in config.rules {
            self = self.rule(r.build()?);
        }
        if let Some(h) = config.override_header {
            self = self.override_header(header("override_header", &h)?);
        }
        if let Some(c) = config.override_cookie {
            if c.is_empty() || c.contains(['=', ';', ' ']) {
                return Err(ConfigError::new(
                    "override_cookie",
                    "must be a non-empty cookie name",
                ));
            }
            self = self.override_cookie(c);
        }
        if let Some(a) = &config.override_access {
            self = self.override_access(a.build()?);
        }
        if let Some(h) = config.response_header {
            self = self.response_header(header("response_header", &h)?);
        }
        if let Some(s) = config.seed {
            self = self.seed(s);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Split;

    #[test]
    fn rejects_bad_values() {
        let b = || Split::builder::<()>().arm("a", ());
        let bad = |cfg: SplitConfig| b().with_config(cfg).unwrap_err().field().to_owned();
        let c = SplitConfig {
            override_header: Some("bad header".into()),
            ..SplitConfig::default()
        };
        assert_eq!(bad(c), "override_header");
        let mut c = SplitConfig::default();
        c.rules.push(RuleConfig::default());
        assert_eq!(bad(c), "rules");
        let mut c = SplitConfig::default();
        c.rules.push(RuleConfig::path_prefix("orders", "a"));
        assert_eq!(bad(c), "rules.path_prefix");
        let mut c = SplitConfig::default();
        c.rules.push(RuleConfig::methods(&["G ET"], "a"));
        assert_eq!(bad(c), "rules.methods");
        let c = SplitConfig {
            override_cookie: Some("a=b".into()),
            ..SplitConfig::default()
        };
        assert_eq!(bad(c), "override_cookie");
        let c = SplitConfig {
            override_access: Some(OverrideAccessConfig::Secret {
                header: "x-token".into(),
                secret: "too short".into(),
            }),
            ..SplitConfig::default()
        };
        assert_eq!(bad(c), "override_access.secret");
        let c = SplitConfig {
            override_access: Some(OverrideAccessConfig::TrustedPeers {
                cidrs: vec!["10.0.0.0/33".into()],
            }),
            ..SplitConfig::default()
        };
        assert_eq!(bad(c), "override_access.cidrs[0]");
        // An override without access is refused when the split is built.
        let c = SplitConfig {
            override_header: Some("x-arm".into()),
            ..SplitConfig::default()
        };
        let err = b().with_config(c).unwrap().build().unwrap_err();
        assert_eq!(err.field(), "override_access");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes() {
        let cfg: SplitConfig = serde_json::from_str(
            r#"{"weights":[95,5],"rules":[{"path_prefix":"/orders","arm":"new"},{"methods":["GET"],"arm":"replica"}],"response_header":"x-arm"}"#,
        )
        .unwrap();
        assert_eq!(cfg.weights, Some(vec![95, 5]));
        assert_eq!(cfg.rules[1], RuleConfig::methods(&["GET"], "replica"));
        assert!(serde_json::from_str::<SplitConfig>(r#"{"weightz":[1]}"#).is_err());
        let cfg: SplitConfig = serde_json::from_str(
            r#"{"override_header":"x-arm","override_access":{"type":"trusted_peers","cidrs":["10.0.0.0/8"]}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.override_access,
            Some(OverrideAccessConfig::TrustedPeers {
                cidrs: vec!["10.0.0.0/8".into()]
            })
        );
        let cfg: SplitConfig =
            serde_json::from_str(r#"{"override_access":{"type":"anyone"}}"#).unwrap();
        assert_eq!(cfg.override_access, Some(OverrideAccessConfig::Anyone));
        let c: crate::CanaryConfig =
            serde_json::from_str(r#"{"interval":"30s","max_p99":"250ms"}"#).unwrap();
        assert_eq!(c.interval, std::time::Duration::from_secs(30));
        assert_eq!(c.max_p99, Some(std::time::Duration::from_millis(250)));
    }
}
