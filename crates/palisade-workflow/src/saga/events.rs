//! Saga events, for listeners, metrics and `tracing`.

use palisade_core::{Event, InstanceName};

/// What a saga orchestrator did. `layer` is `"saga"`, the instance is the saga's name, and
/// `target` the step's name where one applies.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SagaEvent {
    /// An instance was started.
    Started {
        /// The saga's name.
        instance: InstanceName,
    },
    /// A step's action succeeded.
    StepDone {
        /// The saga's name.
        instance: InstanceName,
        /// The step.
        step: String,
    },
    /// A step's action failed or timed out: compensation begins.
    StepFailed {
        /// The saga's name.
        instance: InstanceName,
        /// The step.
        step: String,
        /// `"error"`, `"timeout"` or `"saga_timeout"`.
        reason: &'static str,
    },
    /// Every action succeeded.
    Done {
        /// The saga's name.
        instance: InstanceName,
    },
    /// Every done step was compensated.
    Compensated {
        /// The saga's name.
        instance: InstanceName,
    },
    /// A compensation failed past its attempt limit: the saga needs a human.
    Stuck {
        /// The saga's name.
        instance: InstanceName,
        /// The step whose compensation keeps failing.
        step: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl Event for SagaEvent {
    fn layer(&self) -> &'static str {
        "saga"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::StepDone { .. } => "step_done",
            Self::StepFailed { .. } => "step_failed",
            Self::Done { .. } => "done",
            Self::Compensated { .. } => "compensated",
            Self::Stuck { .. } => "stuck",
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Started { instance }
            | Self::StepDone { instance, .. }
            | Self::StepFailed { instance, .. }
            | Self::Done { instance }
            | Self::Compensated { instance }
            | Self::Stuck { instance, .. } => instance.as_str(),
        }
    }
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::StepFailed { reason, .. } => Some(reason),
            _ => None,
        }
    }
    fn attempt(&self) -> Option<u32> {
        match self {
            Self::Stuck { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }
    fn target(&self) -> Option<&str> {
        match self {
            Self::StepDone { step, .. }
            | Self::StepFailed { step, .. }
            | Self::Stuck { step, .. } => Some(step),
            _ => None,
        }
    }
}
