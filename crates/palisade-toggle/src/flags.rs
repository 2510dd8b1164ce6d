//! [`Flags`]: a cheap, request-scoped evaluation handle.

use std::sync::{Arc, LazyLock};

use palisade_core::Listeners;

use crate::context::EvaluationContext;
use crate::details::{ErrorCode, FlagType, Reason, ResolutionDetails};
use crate::events::ToggleEvent;
use crate::flag::FlagSet;
use crate::provider::{Provider, ProviderStatus};

static EMPTY: LazyLock<Arc<EvaluationContext>> =
    LazyLock::new(|| Arc::new(EvaluationContext::new()));

/// A snapshot of the flags plus an evaluation context: what [`crate::FlagsLayer`] puts in
/// request extensions. Cloning is two `Arc` clones; evaluating a boolean allocates nothing.
#[derive(Debug, Clone)]
pub struct Flags {
    set: Arc<FlagSet>,
    status: ProviderStatus,
    ctx: Arc<EvaluationContext>,
    listeners: Listeners<ToggleEvent>,
}

impl Flags {
    /// Flags from `provider`'s current snapshot, for `ctx`.
    pub fn new(provider: &dyn Provider, ctx: EvaluationContext) -> Self {
        Self::with_context(provider, Arc::new(ctx))
    }

    /// Flags from `provider`'s current snapshot, for a shared (cached) context.
    pub fn with_context(provider: &dyn Provider, ctx: Arc<EvaluationContext>) -> Self {
        Self {
            set: provider.snapshot(),
            status: provider.status(),
            ctx,
            listeners: Listeners::new().named("toggle"),
        }
    }

    /// Flags from `provider`'s current snapshot with an empty context.
    pub fn without_context(provider: &dyn Provider) -> Self {
        Self::with_context(provider, EMPTY.clone())
    }

    /// Reports every evaluation to `listeners` as [`ToggleEvent::Evaluated`].
    #[must_use]
    pub fn listeners(mut self, listeners: Listeners<ToggleEvent>) -> Self {
        // Unnamed listeners take the name these flags already have (`"toggle"`).
        self.listeners = if listeners.instance().is_empty() {
            listeners.named(self.listeners.instance().clone())
        } else {
            listeners
        };
        self
    }

    /// The evaluation context.
    pub fn context(&self) -> &EvaluationContext {
        &self.ctx
    }

    /// The flags snapshot.
    pub fn snapshot(&self) -> &FlagSet {
        &self.set
    }

    /// Evaluates `key` as `T`, with details. Never panics; errors return `default`.
    pub fn details<'a, T: FlagType>(
        &'a self,
        key: &'a str,
        default: T,
    ) -> ResolutionDetails<'a, T> {
        let details = match self.status {
            ProviderStatus::NotReady | ProviderStatus::Fatal => ResolutionDetails {
                flag_key: key,
                value: default,
                variant: None,
                reason: Reason::Error,
                error_code: Some(if self.status == ProviderStatus::Fatal {
                    ErrorCode::ProviderFatal
                } else {
                    ErrorCode::ProviderNotReady
                }),
                error_message: Some("provider not serving flags"),
            },
            _ => self.set.evaluate(key, default, &self.ctx),
        };
        self.listeners
            .emit_named(|instance| ToggleEvent::Evaluated {
                instance,
                flag_key: key.to_owned(),
                variant: details.variant.map(str::to_owned),
                reason: details.reason,
                error_code: details.error_code,
            });
        details
    }

    /// A boolean flag's value (`default` on error).
    pub fn boolean(&self, key: &str, default: bool) -> bool {
        self.details(key, default).value
    }

    /// Whether boolean flag `key` is on (`false` on error).
    pub fn is_enabled(&self, key: &str) -> bool {
        self.boolean(key, false)
    }

    /// A string flag's value (`default` on error).
    pub fn string(&self, key: &str, default: &str) -> String {
        match self.details::<Option<String>>(key, None).value {
            Some(s) => s,
            None => default.to_owned(),
        }
    }

    /// A number flag's value (`default` on error).
    pub fn number(&self, key: &str, default: f64) -> f64 {
        self.details(key, default).value
    }

    /// A JSON flag's value (`default` on error).
    pub fn json(&self, key: &str, default: serde_json::Value) -> serde_json::Value {
        self.details(key, default).value
    }
}

impl FlagType for Option<String> {
    fn from_flag_value(value: &crate::FlagValue) -> Option<Self> {
        String::from_flag_value(value).map(Some)
    }
}
