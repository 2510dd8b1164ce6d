//! OpenFeature-style evaluation details (OpenFeature specification, "Evaluation API" 1.3–1.4
//! and "Types"): a detailed evaluation returns the flag key, value, variant, reason and, on
//! abnormal execution, the caller's default value with an error code and reason `ERROR`;
//! evaluation never fails.

use std::fmt;

use crate::context::EvaluationContext;
use crate::flag::{FlagSet, FlagState, FlagValue};

/// Why a value was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No dynamic evaluation (flag without targeting rules).
    Static,
    /// Targeting rules exist but none matched: the default variant.
    Default,
    /// A targeting rule matched.
    TargetingMatch,
    /// A fractional split assigned the variant (flagd itself reports TARGETING_MATCH here).
    Split,
    /// The flag is disabled: the caller's default.
    Disabled,
    /// Evaluation failed: the caller's default, with an [`ErrorCode`].
    Error,
}

impl Reason {
    /// The OpenFeature spelling (`"TARGETING_MATCH"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::Default => "DEFAULT",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Disabled => "DISABLED",
            Self::Error => "ERROR",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an evaluation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The provider is not ready yet.
    ProviderNotReady,
    /// No flag with this key.
    FlagNotFound,
    /// The flag definition could not be parsed.
    ParseError,
    /// The flag's value is not of the requested type.
    TypeMismatch,
    /// A targeting key was required but missing.
    TargetingKeyMissing,
    /// The context is invalid.
    InvalidContext,
    /// The provider failed irrecoverably.
    ProviderFatal,
    /// Any other error.
    General,
}

impl ErrorCode {
    /// The OpenFeature spelling (`"FLAG_NOT_FOUND"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProviderNotReady => "PROVIDER_NOT_READY",
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::ParseError => "PARSE_ERROR",
            Self::TypeMismatch => "TYPE_MISMATCH",
            Self::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            Self::InvalidContext => "INVALID_CONTEXT",
            Self::ProviderFatal => "PROVIDER_FATAL",
            Self::General => "GENERAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one evaluation. Borrows the flag key and the variant name, so resolving a
/// boolean allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolutionDetails<'a, T> {
    /// The flag key, echoed.
    pub flag_key: &'a str,
    /// The resolved value (the caller's default on error or when disabled).
    pub value: T,
    /// The variant name, when a variant was resolved.
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason,
    /// Set only when `reason` is [`Reason::Error`].
    pub error_code: Option<ErrorCode>,
    /// A human-readable message for errors.
    pub error_message: Option<&'static str>,
}

/// A type a flag can be evaluated as: `bool`, `f64`, `String`, `serde_json::Value`.
pub trait FlagType: Sized {
    /// Converts a variant value, or `None` on a type mismatch.
    fn from_flag_value(value: &FlagValue) -> Option<Self>;
}

impl FlagType for bool {
    fn from_flag_value(value: &FlagValue) -> Option<Self> {
        match value {
            FlagValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl FlagType for f64 {
    fn from_flag_value(value: &FlagValue) -> Option<Self> {
        match value {
            FlagValue::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl FlagType for String {
    fn from_flag_value(value: &FlagValue) -> Option<Self> {
        match value {
            FlagValue::String(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FlagType for serde_json::Value {
    fn from_flag_value(value: &FlagValue) -> Option<Self> {
        match value {
            FlagValue::Json(v) => Some(v.clone()),
            _ => None,
        }
    }
}

fn error<'a, T>(
    key: &'a str,
    default: T,
    code: ErrorCode,
    msg: &'static str,
) -> ResolutionDetails<'a, T> {
    ResolutionDetails {
        flag_key: key,
        value: default,
        variant: None,
        reason: Reason::Error,
        error_code: Some(code),
        error_message: Some(msg),
    }
}

impl FlagSet {
    /// Evaluates flag `key` as `T` for `ctx`. Never panics: on any error it returns `default`
    /// with reason `ERROR` and an error code.
    pub fn evaluate<'a, T: FlagType>(
        &'a self,
        key: &'a str,
        default: T,
        ctx: &EvaluationContext,
    ) -> ResolutionDetails<'a, T> {
        let Some(flag) = self.get(key) else {
            return error(key, default, ErrorCode::FlagNotFound, "flag not found");
        };
        if flag.state == FlagState::Disabled {
            return ResolutionDetails {
                flag_key: key,
                value: default,
                variant: None,
                reason: Reason::Disabled,
                error_code: None,
                error_message: None,
            };
        }
        let (variant, reason) = flag.resolve(key, ctx);
        let Some(raw) = flag.variants.get(variant) else {
            return error(key, default, ErrorCode::ParseError, "variant not defined");
        };
        match T::from_flag_value(raw) {
            Some(value) => ResolutionDetails {
                flag_key: key,
                value,
                variant: Some(variant),
                reason,
                error_code: None,
                error_message: None,
            },
            None => error(
                key,
                default,
                ErrorCode::TypeMismatch,
                "flag value has another type",
            ),
        }
    }
}
