//! Events of the stream processor, in core's event vocabulary (layer `stream_processor`).

use palisade_core::event::{Event, InstanceName};
use std::time::Duration;

/// What the [`StreamProcessor`](crate::consumer::StreamProcessor) did with a message, or
/// with its connection. Read through [`Event`]: `target` is the message type, so an exporter
/// (palisade-metrics' `EventMetrics`) counts messages per type and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// The handler succeeded and the message was acknowledged.
    Handled {
        /// The processor's name.
        instance: InstanceName,
        /// The message type.
        kind: String,
        /// How long the handler ran.
        duration: Duration,
    },
    /// The handler failed; the message is redelivered after `delay`.
    Retried {
        /// The processor's name.
        instance: InstanceName,
        /// The message type.
        kind: String,
        /// The delivery that failed (1 for the first).
        attempt: u32,
        /// The backoff before the next delivery.
        delay: Duration,
    },
    /// The message went to the dead-letter destination and will not be delivered again.
    DeadLettered {
        /// The processor's name.
        instance: InstanceName,
        /// The message type.
        kind: String,
        /// Deliveries made.
        attempt: u32,
        /// `"permanent"` (the handler said so) or `"max_attempts"`.
        reason: &'static str,
    },
    /// The broker connection was lost or could not be made; the processor reconnects.
    Disconnected {
        /// The processor's name.
        instance: InstanceName,
    },
}

impl Event for ConsumerEvent {
    fn layer(&self) -> &'static str {
        "stream_processor"
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Handled { .. } => "handled",
            Self::Retried { .. } => "retried",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::Disconnected { .. } => "disconnected",
        }
    }

    fn instance(&self) -> &str {
        match self {
            Self::Handled { instance, .. }
            | Self::Retried { instance, .. }
            | Self::DeadLettered { instance, .. }
            | Self::Disconnected { instance } => instance,
        }
    }

    /// The handler's run time, or the backoff before a redelivery.
    fn duration(&self) -> Option<Duration> {
        match self {
            Self::Handled { duration, .. } => Some(*duration),
            Self::Retried { delay, .. } => Some(*delay),
            _ => None,
        }
    }

    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::DeadLettered { reason, .. } => Some(reason),
            _ => None,
        }
    }

    fn attempt(&self) -> Option<u32> {
        match self {
            Self::Retried { attempt, .. } | Self::DeadLettered { attempt, .. } => Some(*attempt),
            _ => None,
        }
    }

    /// The message type.
    fn target(&self) -> Option<&str> {
        match self {
            Self::Handled { kind, .. }
            | Self::Retried { kind, .. }
            | Self::DeadLettered { kind, .. } => Some(kind),
            Self::Disconnected { .. } => None,
        }
    }
}
