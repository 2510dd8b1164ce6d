//! Events of the toggle layers and providers.

use palisade_core::event::{Event, InstanceName};

use crate::details::{ErrorCode, Reason};

/// What happened in a flag evaluation or a provider.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ToggleEvent {
    /// A flag was evaluated (built only when observed, so unobserved evaluation stays free).
    Evaluated {
        /// The flags layer's (or provider's) name.
        instance: InstanceName,
        /// The flag key.
        flag_key: String,
        /// The resolved variant, if any.
        variant: Option<String>,
        /// Why.
        reason: Reason,
        /// The error code, on error.
        error_code: Option<ErrorCode>,
    },
    /// A provider loaded a new snapshot.
    Reloaded {
        /// The flags layer's (or provider's) name.
        instance: InstanceName,
        /// Where from (e.g. the file path).
        source: String,
        /// How many flags it holds.
        flags: usize,
    },
    /// A reload failed; the last good flags stay in use.
    ReloadFailed {
        /// The flags layer's (or provider's) name.
        instance: InstanceName,
        /// Where from.
        source: String,
        /// Why.
        error: String,
    },
}

impl Event for ToggleEvent {
    fn instance(&self) -> &str {
        match self {
            Self::Evaluated { instance, .. }
            | Self::Reloaded { instance, .. }
            | Self::ReloadFailed { instance, .. } => instance,
        }
    }
    fn layer(&self) -> &'static str {
        "toggle"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Evaluated { .. } => "evaluated",
            Self::Reloaded { .. } => "reloaded",
            Self::ReloadFailed { .. } => "reload_failed",
        }
    }
}
