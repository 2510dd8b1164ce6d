//! Policy file formats: TOML, JSON and (feature `yaml`) YAML, all read into one JSON value
//! tree so that merging and validation are the same for every format.

use std::path::Path;

use serde_json::Value;

use crate::error::PolicyError;

/// The syntax of a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// TOML (feature `toml`, on by default).
    Toml,
    /// JSON.
    Json,
    /// YAML (feature `yaml`).
    Yaml,
}

impl Format {
    /// The format a file name's extension says: `.toml`, `.json`, `.yaml`/`.yml`.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }

    /// Reads `text` into a value tree; a syntax error is reported at the path `<file>`.
    pub(crate) fn parse(self, text: &str) -> Result<Value, PolicyError> {
        let syntax = |e: &dyn std::fmt::Display| {
            PolicyError::one(
                "<file>",
                format!("{self:?} syntax: {}", e.to_string().trim_end()),
            )
        };
        match self {
            #[cfg(feature = "toml")]
            Self::Toml => toml::from_str::<Value>(text).map_err(|e| syntax(&e)),
            #[cfg(not(feature = "toml"))]
            Self::Toml => Err(PolicyError::one(
                "<file>",
                "TOML support is off (feature `toml`)",
            )),
            Self::Json => serde_json::from_str::<Value>(text).map_err(|e| syntax(&e)),
            #[cfg(feature = "yaml")]
            Self::Yaml => serde_yaml_ng::from_str::<Value>(text).map_err(|e| syntax(&e)),
            #[cfg(not(feature = "yaml"))]
            Self::Yaml => Err(PolicyError::one(
                "<file>",
                "YAML support is off (feature `yaml`)",
            )),
        }
    }
}
