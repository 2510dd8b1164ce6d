//! Plain-data configuration of the toggle layer, deserializable with the `serde` feature.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use palisade_core::config::check_duration;
use palisade_core::key::HeaderKey;
use palisade_core::{ConfigError, KeyError, KeyExtractor};

use crate::layer::{AttrSource, FlagsLayer};
use crate::provider::FileProvider;

/// Configuration for a file-backed [`FlagsLayer`].
///
/// ```
/// use palisade_toggle::ToggleConfig;
/// let err = ToggleConfig::default().build().unwrap_err();
/// assert_eq!(err.field(), "file");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ToggleConfig {
    /// The layer's instance name, for its events and metrics: 1–128 visible ASCII
    /// characters. Default: none (`"toggle"`).
    pub name: Option<String>,
    /// The JSON flag file (required).
    pub file: Option<PathBuf>,
    /// Poll the file's modification time this often (100ms..=1h); `None`: no polling.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub poll_interval: Option<Duration>,
    /// The header carrying the targeting key; `None`: no targeting key.
    pub targeting_key_header: Option<String>,
    /// Context attributes by name: `"header:x-country"`, `"cookie:tier"`, `"query:ab"`,
    /// `"path"` or `"method"`.
    pub attributes: BTreeMap<String, String>,
}

impl FromStr for AttrSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let header = |h: &str| {
            palisade_core::config::header_name("", h)
                .map(AttrSource::Header)
                .map_err(|e| e.problem().to_owned())
        };
        match s.split_once(':') {
            Some(("header", h)) => header(h),
            Some(("cookie", c)) if !c.is_empty() => Ok(Self::Cookie(c.to_owned())),
            Some(("query", q)) if !q.is_empty() => Ok(Self::Query(q.to_owned())),
            None if s == "path" => Ok(Self::Path),
            None if s == "method" => Ok(Self::Method),
            _ => Err(format!(
                "`{s}` must be header:NAME, cookie:NAME, query:NAME, path or method"
            )),
        }
    }
}

/// A targeting-key extractor that may be absent (from [`ToggleConfig`]).
#[derive(Debug, Clone)]
pub struct OptionalKey<K>(pub Option<K>);

impl<R: ?Sized, K: KeyExtractor<R>> KeyExtractor<R> for OptionalKey<K> {
    type Key = Option<K::Key>;
    fn extract(&self, req: &R) -> Result<Self::Key, KeyError> {
        self.0.as_ref().map(|k| k.extract(req)).transpose()
    }
}

/// What [`ToggleConfig::build`] returns: the provider (call [`FileProvider::watch`] when
/// `poll_interval` is set; see [`ToggleConfig::poll_interval`]) and the layer.
pub type BuiltToggle = (FileProvider, FlagsLayer<OptionalKey<HeaderKey>>);

impl ToggleConfig {
    /// Validates every field, loads the file and builds the provider and layer.
    pub fn build(&self) -> Result<BuiltToggle, ConfigError> {
        if let Some(every) = self.poll_interval {
            check_duration(
                "poll_interval",
                every,
                crate::provider::POLL_INTERVAL_RANGE.0,
                crate::provider::POLL_INTERVAL_RANGE.1,
            )?;
        }
        let key = match &self.targeting_key_header {
            Some(h) => Some(HeaderKey::new(palisade_core::config::header_name(
                "targeting_key_header",
                h,
            )?)),
            None => None,
        };
        let mut sources = Vec::with_capacity(self.attributes.len());
        for (name, source) in &self.attributes {
            let parsed = source
                .parse::<AttrSource>()
                .map_err(|p| ConfigError::new(format!("attributes.{name}"), p))?;
            sources.push((name.clone(), parsed));
        }
        let Some(path) = &self.file else {
            return Err(ConfigError::new("file", "a JSON flag file is required"));
        };
        let provider = FileProvider::open(path).map_err(|e| e.within("file"))?;
        let mut layer = FlagsLayer::new(provider.clone()).targeting_key(OptionalKey(key));
        for (name, source) in sources {
            layer = layer.attribute(name, source);
        }
        if let Some(name) = &self.name {
            palisade_core::config::check_instance_name("name", name)?;
            layer = layer.name(name);
        }
        Ok((provider, layer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_sources_parse() {
        assert_eq!(
            "header:x-country".parse::<AttrSource>(),
            Ok(AttrSource::Header(http::HeaderName::from_static(
                "x-country"
            )))
        );
        assert_eq!("cookie:tier".parse(), Ok(AttrSource::Cookie("tier".into())));
        assert_eq!("query:ab".parse(), Ok(AttrSource::Query("ab".into())));
        assert_eq!("path".parse(), Ok(AttrSource::Path));
        assert_eq!("method".parse(), Ok(AttrSource::Method));
        for bad in ["header:bad name", "cookie:", "body", "query"] {
            assert!(bad.parse::<AttrSource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn build_names_the_bad_field() {
        let mut c = ToggleConfig {
            file: Some(PathBuf::from("/nonexistent/flags.json")),
            ..ToggleConfig::default()
        };
        assert_eq!(c.build().unwrap_err().field(), "file.path");
        c.poll_interval = Some(Duration::from_millis(1));
        assert_eq!(c.build().unwrap_err().field(), "poll_interval");
        c.poll_interval = None;
        c.targeting_key_header = Some("bad header".into());
        assert_eq!(c.build().unwrap_err().field(), "targeting_key_header");
        c.targeting_key_header = None;
        c.attributes.insert("country".into(), "body".into());
        assert_eq!(c.build().unwrap_err().field(), "attributes.country");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_with_human_durations_and_denies_unknown_fields() {
        let c: ToggleConfig = serde_json::from_str(
            r#"{"file": "flags.json", "poll_interval": "5s", "targeting_key_header": "x-user",
                "attributes": {"country": "header:x-country"}}"#,
        )
        .unwrap();
        assert_eq!(c.poll_interval, Some(Duration::from_secs(5)));
        assert_eq!(c.attributes["country"], "header:x-country");
        assert!(serde_json::from_str::<ToggleConfig>(r#"{"fil": "x"}"#).is_err());
    }
}
