//! Events emitted by [`Split`](crate::Split), [`SplitHandle`](crate::SplitHandle) and
//! [`CanaryController`](crate::CanaryController).

use std::sync::Arc;
use std::time::Duration;

use palisade_core::event::{Event, InstanceName};

use crate::route::RouteReason;

/// Why the canary was rolled back.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RollbackReason {
    /// The canary's error rate exceeded the stable arm's by more than the threshold.
    ErrorRate {
        /// Canary error rate over the window (0.0..=1.0).
        canary: f64,
        /// Stable error rate over the window.
        stable: f64,
    },
    /// The canary's p99 latency exceeded the bound.
    Latency {
        /// Measured p99 (histogram bucket upper bound).
        p99: Duration,
        /// The configured bound.
        bound: Duration,
    },
}

/// A traffic-splitting event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TrafficEvent {
    /// A request was routed to `arm` (built only when observed).
    Routed {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Arm name.
        arm: Arc<str>,
        /// How it was chosen.
        reason: RouteReason,
    },
    /// The weights changed (handle or canary step).
    WeightChanged {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// New relative weights, in arm order.
        weights: Vec<u32>,
    },
    /// All traffic was switched to `arm` (blue-green).
    Switched {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Arm name.
        arm: Arc<str>,
    },
    /// `arm` was drained (no new weighted, rule or override traffic).
    Drained {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Arm name.
        arm: Arc<str>,
    },
    /// The canary advanced to `percent` of traffic: to the first step when the
    /// [`CanaryController`](crate::CanaryController) starts, then at each healthy analysis.
    Advanced {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Canary arm.
        arm: Arc<str>,
        /// New canary share.
        percent: u32,
    },
    /// The canary reached 100 %.
    Promoted {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Canary arm.
        arm: Arc<str>,
    },
    /// The canary was set back to 0 %.
    RolledBack {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Canary arm.
        arm: Arc<str>,
        /// Why.
        reason: RollbackReason,
    },
    /// A request was not mirrored.
    ShadowSkipped {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Why ("concurrency limit", "body too large or unbounded").
        reason: &'static str,
    },
    /// A mirrored request completed (or failed / timed out: `shadow` is `None`).
    ShadowCompared {
        /// The split's (or shadow layer's) name.
        instance: InstanceName,
        /// Status the primary answered (`None` if it failed).
        primary: Option<http::StatusCode>,
        /// Status the mirror answered (`None` on error or timeout).
        shadow: Option<http::StatusCode>,
        /// Both answered with the same status.
        matched: bool,
    },
}

impl Event for TrafficEvent {
    fn layer(&self) -> &'static str {
        "traffic"
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Routed { .. } => "routed",
            Self::WeightChanged { .. } => "weight_changed",
            Self::Switched { .. } => "switched",
            Self::Drained { .. } => "drained",
            Self::Advanced { .. } => "advanced",
            Self::Promoted { .. } => "promoted",
            Self::RolledBack { .. } => "rolled_back",
            Self::ShadowSkipped { .. } => "shadow_skipped",
            Self::ShadowCompared { .. } => "shadow_compared",
        }
    }

    fn instance(&self) -> &str {
        match self {
            Self::Routed { instance, .. }
            | Self::WeightChanged { instance, .. }
            | Self::Switched { instance, .. }
            | Self::Drained { instance, .. }
            | Self::Advanced { instance, .. }
            | Self::Promoted { instance, .. }
            | Self::RolledBack { instance, .. }
            | Self::ShadowSkipped { instance, .. }
            | Self::ShadowCompared { instance, .. } => instance,
        }
    }

    /// The arm an event is about.
    fn target(&self) -> Option<&str> {
        match self {
            Self::Routed { arm, .. }
            | Self::Switched { arm, .. }
            | Self::Drained { arm, .. }
            | Self::Advanced { arm, .. }
            | Self::Promoted { arm, .. }
            | Self::RolledBack { arm, .. } => Some(arm),
            _ => None,
        }
    }

    /// The canary's new share: the step reached, 100 when promoted, 0 when rolled back.
    fn percent(&self) -> Option<u32> {
        match self {
            Self::Advanced { percent, .. } => Some(*percent),
            Self::Promoted { .. } => Some(100),
            Self::RolledBack { .. } => Some(0),
            _ => None,
        }
    }

    /// How a request was routed (`override`, `rule`, `sticky`, `random`), why a canary was
    /// rolled back (`error_rate`, `latency`), why a request was not mirrored
    /// (`concurrency_limit`, `body_too_large`).
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Routed { reason, .. } => Some(reason.as_str()),
            Self::RolledBack { reason, .. } => Some(reason.as_str()),
            Self::ShadowSkipped { reason, .. } => Some(if *reason == "concurrency limit" {
                "concurrency_limit"
            } else {
                "body_too_large"
            }),
            _ => None,
        }
    }
}

impl RollbackReason {
    /// Stable snake_case name: `error_rate`, `latency`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::ErrorRate { .. } => "error_rate",
            Self::Latency { .. } => "latency",
        }
    }
}
