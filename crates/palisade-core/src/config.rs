//! Configuration errors and the checks every layer config uses.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// An invalid configuration value, naming the field and what would be accepted.
///
/// ```
/// use palisade_core::ConfigError;
/// let e = ConfigError::new("timeout", "must be greater than zero, e.g. \"2s\"").within("routes./pay");
/// assert_eq!(e.to_string(), "invalid configuration `routes./pay.timeout`: must be greater than zero, e.g. \"2s\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: Cow<'static, str>,
    problem: Cow<'static, str>,
}

impl ConfigError {
    /// An error for `field` (a dotted path as in the config file) saying what is wrong and
    /// what is allowed.
    pub fn new(field: impl Into<Cow<'static, str>>, problem: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
    /// The dotted path of the offending field.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// What is wrong and what is allowed.
    pub fn problem(&self) -> &str {
        &self.problem
    }
    /// Prefixes the field path with `section` (e.g. the route or layer name).
    #[must_use]
    pub fn within(self, section: &str) -> Self {
        Self {
            field: format!("{section}.{}", self.field).into(),
            problem: self.problem,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration `{}`: {}",
            self.field, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

/// Checks `min <= value <= max` for a duration, naming `field` and the range on failure.
pub fn check_duration(
    field: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            field,
            format!("must be between {min:?} and {max:?} (got {value:?})"),
        ));
    }
    Ok(())
}

/// Checks `min <= value <= max`, naming `field` and the range on failure.
pub fn check_range<T: PartialOrd + fmt::Debug + Copy>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            field,
            format!("must be between {min:?} and {max:?} (got {value:?})"),
        ));
    }
    Ok(())
}

/// Parses a header name given in a config, naming `field` on failure, in the one wording
/// every layer uses.
///
/// ```
/// use palisade_core::config::header_name;
/// assert_eq!(header_name("deadline_header", "X-Timeout-Ms").unwrap(), "x-timeout-ms");
/// assert_eq!(
///     header_name("deadline_header", "bad header").unwrap_err().to_string(),
///     "invalid configuration `deadline_header`: must be an HTTP header name: letters, \
///      digits and !#$%&'*+-.^_`|~, e.g. \"x-request-id\" (got \"bad header\")"
/// );
/// ```
pub fn header_name(
    field: impl Into<Cow<'static, str>>,
    value: &str,
) -> Result<http::HeaderName, ConfigError> {
    http::HeaderName::from_bytes(value.as_bytes()).map_err(|_| {
        ConfigError::new(
            field,
            format!(
                "must be an HTTP header name: letters, digits and !#$%&'*+-.^_`|~, \
                 e.g. \"x-request-id\" (got {value:?})"
            ),
        )
    })
}

/// Longest accepted instance name (a layer's `name`), in bytes.
pub const MAX_INSTANCE_NAME: usize = 128;

/// Checks a layer instance's `name` (see [`InstanceName`](crate::event::InstanceName)):
/// 1 to [`MAX_INSTANCE_NAME`] bytes of visible ASCII (no spaces or control characters), so
/// it is safe as a metric label and in logs.
pub fn check_instance_name(field: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || name.len() > MAX_INSTANCE_NAME
        || !name.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ConfigError::new(
            field,
            format!(
                "must be 1 to {MAX_INSTANCE_NAME} visible ASCII characters, e.g. \"payments\" (got {name:?})"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_short_visible_ascii() {
        assert!(check_instance_name("name", "payments-db.v2").is_ok());
        for bad in ["", "two words", "caf\u{e9}", &"x".repeat(129)] {
            assert_eq!(
                check_instance_name("name", bad).unwrap_err().field(),
                "name"
            );
        }
    }

    #[test]
    fn checks_name_field_and_range() {
        let e = check_duration(
            "timeout",
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(e.field(), "timeout");
        assert_eq!(e.problem(), "must be between 1ms and 1s (got 0ns)");
        assert!(check_range("ratio", 0.5, 0.0, 1.0).is_ok());
        assert_eq!(
            check_range("ratio", 2.0, 0.0, 1.0).unwrap_err().to_string(),
            "invalid configuration `ratio`: must be between 0.0 and 1.0 (got 2.0)"
        );
    }
}
