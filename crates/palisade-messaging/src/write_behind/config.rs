//! Write-behind settings.

use palisade_core::ConfigError;
use palisade_core::config::{check_duration, check_range};
use std::time::Duration;

/// Settings of a [`WriteBehind`](super::WriteBehind): start from [`WriteBehindConfig::new`],
/// set what differs; [`WriteBehind::new`](super::WriteBehind::new) checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBehindConfig {
    pub(crate) capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Duration,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteBehindConfig {
    /// Capacity 10 000 keys, batches of 500, a flush every second, 3 attempts from 100 ms.
    pub const fn new() -> Self {
        Self {
            capacity: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_secs(1),
            max_attempts: 3,
            backoff: Duration::from_millis(100),
        }
    }

    /// Most distinct keys queued (1 to 10 000 000); writes to new keys wait beyond it.
    #[must_use]
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Most writes per batch (1 to `capacity`); a full batch is flushed without waiting
    /// for the interval.
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Longest time a queued write waits for its flush (1 ms to 1 h).
    #[must_use]
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// Attempts per batch before its writes go back in the queue (1 to 100).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Delay after the first failed attempt, doubled per attempt (0 to 1 min).
    #[must_use]
    pub fn backoff(mut self, d: Duration) -> Self {
        self.backoff = d;
        self
    }

    /// Checks every value, naming the field of the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("write_behind.capacity", self.capacity, 1, 10_000_000)?;
        check_range("write_behind.batch_size", self.batch_size, 1, self.capacity)?;
        check_duration(
            "write_behind.flush_interval",
            self.flush_interval,
            Duration::from_millis(1),
            Duration::from_secs(3600),
        )?;
        check_range("write_behind.max_attempts", self.max_attempts, 1, 100)?;
        check_duration(
            "write_behind.backoff",
            self.backoff,
            Duration::ZERO,
            Duration::from_secs(60),
        )?;
        Ok(())
    }
}
