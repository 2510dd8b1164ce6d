//! [`RecordConfig`]: the recorder's plain-data configuration, deserializable with the
//! `serde` feature.

use std::io::Write;

use palisade_core::ConfigError;
use palisade_core::config::{check_range, header_name};

use crate::record::layer::{DEFAULT_CAPACITY, MAX_BODY, MAX_CAPACITY, RecordLayer};

/// The longest accepted [`RecordConfig::path`], in bytes.
pub const MAX_PATH: usize = 4096;
/// The most header names accepted in [`RecordConfig::redact`] and
/// [`RecordConfig::only_headers`] each.
pub const MAX_HEADER_NAMES: usize = 64;
/// The default [`RecordConfig::max_body`]: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 << 10;

/// Configuration of a [`RecordLayer`], e.g. a `record` section:
///
/// ```toml
/// path = "/var/log/palisade/traffic.jsonl"
/// sample = 0.01
/// seed = 7
/// max_body = 4096
/// capacity = 1024
/// redact = ["x-api-key"]
/// only_headers = ["content-type", "x-api-key", "x-request-id"]
/// ```
///
/// Validated once by [`RecordConfig::build`] (or `TryFrom`), every value before the file is
/// opened: `path` 1 to 4096 bytes; `sample` in `[0, 1]`; `max_body` at most 16 MiB
/// (16777216); `capacity` 1 to 65536; at most 64 names in `redact` and in `only_headers`,
/// each an HTTP header name. The error names the field path (`redact[2]`).
///
/// `authorization`, `proxy-authorization`, `cookie` and `set-cookie` are always redacted;
/// `redact` adds to them.
///
/// ```
/// use palisade_chaos::record::RecordConfig;
/// let mut cfg = RecordConfig::new("traffic.jsonl");
/// cfg.sample = Some(1.5);
/// assert_eq!(
///     cfg.build().unwrap_err().to_string(),
///     "invalid configuration `sample`: must be a probability between 0.0 and 1.0 (got 1.5)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct RecordConfig {
    /// The file the exchanges are appended to (created if missing): 1 to 4096 bytes.
    /// Required.
    pub path: String,
    /// Share of requests recorded, in `[0, 1]`. Default (`None`) every request.
    pub sample: Option<f64>,
    /// Seed of the sampling, so a rerun records the same requests. Default random.
    pub seed: Option<u64>,
    /// The most bytes recorded of each body, 0 to 16777216 (16 MiB); 0 records only the
    /// length. Default (`None`) 65536.
    pub max_body: Option<usize>,
    /// Finished exchanges that may wait for the writer, 1 to 65536; more are dropped and
    /// counted. Default (`None`) 1024.
    pub capacity: Option<usize>,
    /// Headers redacted besides the default four, at most 64. Default none.
    pub redact: Vec<String>,
    /// Records only these headers, at most 64. Default (`None`) every header.
    pub only_headers: Option<Vec<String>>,
}

impl RecordConfig {
    /// A configuration recording to `path`, every other value at its default.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// Validates every value, then opens [`path`](Self::path) for appending and builds the
    /// layer; a file that cannot be opened is an error on `path`.
    pub fn build(&self) -> Result<RecordLayer, ConfigError> {
        self.check()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| {
                ConfigError::new(
                    "path",
                    format!("must be a file that can be opened for appending ({e})"),
                )
            })?;
        self.build_with_writer(file)
    }

    /// Validates every value and builds a layer recording to `out` instead of
    /// [`path`](Self::path) (which is still validated).
    pub fn build_with_writer(
        &self,
        out: impl Write + Send + 'static,
    ) -> Result<RecordLayer, ConfigError> {
        self.check()?;
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY);
        let mut layer = RecordLayer::to_writer(out, capacity).map_err(|e| {
            ConfigError::new(
                "path",
                format!("needs a writer thread, which could not start ({e})"),
            )
        })?;
        layer = layer.max_body(self.max_body.unwrap_or(DEFAULT_MAX_BODY));
        if let Some(p) = self.sample {
            layer = layer.sample(p);
        }
        if let Some(seed) = self.seed {
            layer = layer.seed(seed);
        }
        for name in &self.redact {
            layer = layer.redact(header_name("redact", name)?);
        }
        if let Some(only) = &self.only_headers {
            let names = only
                .iter()
                .map(|n| header_name("only_headers", n))
                .collect::<Result<Vec<_>, _>>()?;
            layer = layer.only_headers(names);
        }
        Ok(layer)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.path.is_empty() || self.path.len() > MAX_PATH {
            return Err(ConfigError::new(
                "path",
                format!(
                    "must be a file path of 1 to {MAX_PATH} bytes, e.g. \"traffic.jsonl\" (got {} bytes)",
                    self.path.len()
                ),
            ));
        }
        if let Some(p) = self.sample
            && (p.is_nan() || !(0.0..=1.0).contains(&p))
        {
            return Err(ConfigError::new(
                "sample",
                format!("must be a probability between 0.0 and 1.0 (got {p})"),
            ));
        }
        if let Some(n) = self.max_body {
            check_range("max_body", n, 0, MAX_BODY)?;
        }
        if let Some(n) = self.capacity {
            check_range("capacity", n, 1, MAX_CAPACITY)?;
        }
        header_names("redact", &self.redact)?;
        if let Some(only) = &self.only_headers {
            header_names("only_headers", only)?;
        }
        Ok(())
    }
}

fn header_names(field: &'static str, names: &[String]) -> Result<(), ConfigError> {
    if names.len() > MAX_HEADER_NAMES {
        return Err(ConfigError::new(
            field,
            format!(
                "must list at most {MAX_HEADER_NAMES} header names (got {})",
                names.len()
            ),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        header_name(format!("{field}[{i}]"), name)?;
    }
    Ok(())
}

impl TryFrom<&RecordConfig> for RecordLayer {
    type Error = ConfigError;
    fn try_from(cfg: &RecordConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

impl TryFrom<RecordConfig> for RecordLayer {
    type Error = ConfigError;
    fn try_from(cfg: RecordConfig) -> Result<Self, ConfigError> {
        cfg.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(cfg: &RecordConfig) -> String {
        cfg.build_with_writer(std::io::sink())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_bound_names_its_field_and_range() {
        let ok = RecordConfig::new("traffic.jsonl");
        assert!(ok.build_with_writer(std::io::sink()).is_ok());

        let cfg = RecordConfig::new("");
        assert_eq!(
            error(&cfg),
            "invalid configuration `path`: must be a file path of 1 to 4096 bytes, \
             e.g. \"traffic.jsonl\" (got 0 bytes)"
        );
        let cfg = RecordConfig::new("a".repeat(MAX_PATH + 1));
        assert!(error(&cfg).ends_with("(got 4097 bytes)"), "{}", error(&cfg));
        assert!(
            RecordConfig::new("a".repeat(MAX_PATH))
                .build_with_writer(std::io::sink())
                .is_ok()
        );

        for bad in [1.5, -0.1, f64::NAN] {
            let cfg = RecordConfig {
                sample: Some(bad),
                ..ok.clone()
            };
            assert_eq!(
                error(&cfg),
                format!(
                    "invalid configuration `sample`: must be a probability between 0.0 and 1.0 (got {bad})"
                )
            );
        }

        let cfg = RecordConfig {
            max_body: Some(MAX_BODY + 1),
            ..ok.clone()
        };
        assert_eq!(
            error(&cfg),
            "invalid configuration `max_body`: must be between 0 and 16777216 (got 16777217)"
        );

        let cfg = RecordConfig {
            capacity: Some(0),
            ..ok.clone()
        };
        assert_eq!(
            error(&cfg),
            "invalid configuration `capacity`: must be between 1 and 65536 (got 0)"
        );
        let cfg = RecordConfig {
            capacity: Some(MAX_CAPACITY + 1),
            ..ok.clone()
        };
        assert_eq!(
            error(&cfg),
            "invalid configuration `capacity`: must be between 1 and 65536 (got 65537)"
        );

        let cfg = RecordConfig {
            redact: vec!["x-api-key".into(), "x-ok".into(), "bad name".into()],
            ..ok.clone()
        };
        assert_eq!(
            error(&cfg),
            "invalid configuration `redact[2]`: must be an HTTP header name: letters, digits \
             and !#$%&'*+-.^_`|~, e.g. \"x-request-id\" (got \"bad name\")"
        );
        let cfg = RecordConfig {
            redact: vec!["x-a".into(); MAX_HEADER_NAMES + 1],
            ..ok.clone()
        };
        assert_eq!(
            error(&cfg),
            "invalid configuration `redact`: must list at most 64 header names (got 65)"
        );

        let cfg = RecordConfig {
            only_headers: Some(vec!["ü".into()]),
            ..ok.clone()
        };
        assert_eq!(
            error(&cfg),
            "invalid configuration `only_headers[0]`: must be an HTTP header name: letters, \
             digits and !#$%&'*+-.^_`|~, e.g. \"x-request-id\" (got \"ü\")"
        );
        let cfg = RecordConfig {
            only_headers: Some(vec!["x-a".into(); MAX_HEADER_NAMES + 1]),
            ..ok
        };
        assert_eq!(
            error(&cfg),
            "invalid configuration `only_headers`: must list at most 64 header names (got 65)"
        );
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_an_error_on_path() {
        let dir = std::env::temp_dir().join(format!("palisade-record-{}", std::process::id()));
        let cfg = RecordConfig::new(dir.join("missing-dir").join("t.jsonl").to_string_lossy());
        let err = RecordLayer::try_from(&cfg).unwrap_err();
        assert_eq!(err.field(), "path");
        assert!(
            err.problem()
                .starts_with("must be a file that can be opened for appending ("),
            "{err}"
        );
    }

    #[test]
    fn build_opens_the_file_for_appending() {
        let path = std::env::temp_dir().join(format!(
            "palisade-record-config-{}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, b"earlier\n").unwrap();
        let layer = RecordConfig::new(path.to_string_lossy()).build().unwrap();
        drop(layer);
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_and_refuses_unknown_fields() {
        let cfg: RecordConfig = serde_json::from_str(
            r#"{"path":"t.jsonl","sample":0.25,"seed":7,"max_body":0,"capacity":8,
                "redact":["x-api-key"],"only_headers":["content-type"]}"#,
        )
        .unwrap();
        assert_eq!(cfg.sample, Some(0.25));
        assert_eq!(cfg.capacity, Some(8));
        assert_eq!(cfg.redact, ["x-api-key"]);
        assert!(cfg.build_with_writer(std::io::sink()).is_ok());
        let err = serde_json::from_str::<RecordConfig>(r#"{"path":"t","smaple":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `smaple`"), "{err}");
        let cfg: RecordConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            error(&cfg).split(':').next(),
            Some("invalid configuration `path`")
        );
    }
}
