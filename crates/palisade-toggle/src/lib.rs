//! Feature toggles for Tower services, evaluated the OpenFeature way.
//!
//! - [`Flag`]: boolean, string, number or JSON variants, a default variant, an
//!   enabled/disabled [`FlagState`] and ordered targeting [`TargetingRule`]s over an
//!   [`EvaluationContext`] ([`Condition`]: equals, in, starts_with, ends_with, semver and
//!   numeric compare, and/or/not), or a flagd-compatible [`Fractional`] split
//!   (murmur3 x86_32 of `flagKey + targetingKey`, `bucket = (h × total) >> 32`): a subject
//!   keeps its variant while its variant's share only grows.
//! - [`ResolutionDetails`]: value, variant, [`Reason`] and [`ErrorCode`]; evaluation never
//!   panics and returns the caller's default on error.
//! - Providers: [`StaticProvider`], [`DynamicProvider`], hot-reloaded [`FileProvider`] (a bad
//!   file keeps the last good flags and emits [`ToggleEvent::ReloadFailed`]), and the
//!   [`Provider`] trait for remote sources.
//! - [`FlagsLayer`] puts a cheap [`Flags`] handle into request extensions (an axum extractor
//!   with feature `axum`); [`FlagGateLayer`] serves a route only while a flag is on.
//!
//! # Example
//!
//! ```
//! use palisade_toggle::{Condition, EvaluationContext, Flag, FlagSet, Flags, Reason, TargetingRule, StaticProvider};
//!
//! let flags = FlagSet::new().with(
//!     "new-checkout",
//!     Flag::boolean(false).rule(TargetingRule::variant(
//!         Condition::EndsWith("email".into(), "@acme.io".into()),
//!         "on",
//!     )),
//! );
//! let provider = StaticProvider::new(flags);
//!
//! let staff = Flags::new(&provider, EvaluationContext::new().with("email", "ann@acme.io"));
//! assert!(staff.is_enabled("new-checkout"));
//! let d = staff.details("new-checkout", false);
//! assert_eq!((d.variant, d.reason), (Some("on"), Reason::TargetingMatch));
//!
//! let guest = Flags::new(&provider, EvaluationContext::new().with("email", "bob@example.com"));
//! assert!(!guest.is_enabled("new-checkout"));
//! assert_eq!(guest.details("new-checkout", true).reason, Reason::Default);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod config;
mod context;
mod details;
mod events;
mod flag;
mod flags;
mod gate;
mod layer;
pub mod murmur;
mod provider;
mod semver;

pub use config::{BuiltToggle, OptionalKey, ToggleConfig};
pub use context::{AttrValue, EvaluationContext, TARGETING_KEY};
pub use details::{ErrorCode, FlagType, Reason, ResolutionDetails};
pub use events::ToggleEvent;
pub use flag::{
    CmpOp, Condition, Flag, FlagSet, FlagState, FlagValue, Fractional, TargetingRule, Then,
};
pub use flags::Flags;
pub use gate::{Fallback, FlagGate, FlagGateLayer, GateFuture, NotFound};
pub use layer::{AttrSource, FlagsLayer, FlagsService, IntoTargetingKey, NoTargetingKey};
pub use provider::{
    DynamicProvider, FileProvider, POLL_INTERVAL_RANGE, Provider, ProviderStatus, StaticProvider,
};
