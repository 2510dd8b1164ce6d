//! Stream processor settings.

// The runtime is driven by the broker sources (features `nats`, `amqp`).
#![cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(dead_code))]

use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};
use std::time::Duration;

/// Settings of a [`StreamProcessor`](super::StreamProcessor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub(crate) max_in_flight: usize,
    pub(crate) max_attempts: u32,
    pub(crate) base_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) dead_letter_subject: String,
    pub(crate) shutdown_grace: Duration,
}

impl ProcessorConfig {
    /// Dead letters go to `dead_letter_subject` (a NATS subject or AMQP routing key);
    /// 16 messages in flight, 5 attempts, redelivery after 1 s doubling up to 1 min, 30 s to
    /// finish in-flight messages at shutdown.
    pub fn new(dead_letter_subject: impl Into<String>) -> Self {
        Self {
            max_in_flight: 16,
            max_attempts: 5,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            dead_letter_subject: dead_letter_subject.into(),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Most messages handled at once, and fetched ahead (1 to 10 000).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Deliveries of a message before it is dead-lettered (1 to 1 000).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Redelivery delay after the first failure, doubled per attempt up to `max`
    /// (1 ms to 1 h, base ≤ max).
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max;
        self
    }

    /// How long shutdown waits for in-flight messages (0 to 10 min); those still running
    /// then are abandoned unacknowledged and redelivered later.
    #[must_use]
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }

    /// Checks every value, naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("processor.max_in_flight", self.max_in_flight, 1, 10_000)?;
        check_range("processor.max_attempts", self.max_attempts, 1, 1_000)?;
        let hour = Duration::from_secs(3600);
        check_duration(
            "processor.backoff.base",
            self.base_backoff,
            Duration::from_millis(1),
            hour,
        )?;
        check_duration(
            "processor.backoff.max",
            self.max_backoff,
            self.base_backoff,
            hour,
        )?;
        check_duration(
            "processor.shutdown_grace",
            self.shutdown_grace,
            Duration::ZERO,
            Duration::from_secs(600),
        )?;
        crate::PublishRequest::new(self.dead_letter_subject.clone(), bytes::Bytes::new())
            .validate()
            .map_err(|m| ConfigError::new("processor.dead_letter_subject", m))?;
        Ok(())
    }

    pub(crate) fn backoff_for(&self, attempt: u32) -> Duration {
        self.base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff)
    }
}
