//! [`Clock`]: time as a `u64` count of nanoseconds since the clock was made, so that a
//! layer can keep instants in atomics (a breaker's end of OPEN, a rate limit's theoretical
//! arrival times, a budget's last rotation, a histogram's period) and compare them without
//! a lock.
//!
//! It reads `tokio::time::Instant`, so `tokio::time::pause()` and `advance()` move it in
//! tests. A read is one `Instant::now()` and a subtraction in whole `u64`s (no `u128`
//! division).
//!
//! ```
//! use palisade_core::clock::Clock;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let clock = Clock::new();
//! assert_eq!(clock.now(), 0);
//! tokio::time::advance(Duration::from_millis(5)).await;
//! assert_eq!(clock.now(), 5_000_000);
//! assert_eq!(clock.elapsed(), Duration::from_millis(5));
//! assert_eq!(clock.instant(clock.now()), tokio::time::Instant::now());
//! # }
//! ```

use std::time::Duration;

use tokio::time::Instant;

/// A monotonic clock counting nanoseconds from when it was made; see the
/// [module docs](self). `Copy`: every clone reads the same time line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    epoch: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting now (reading 0).
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// A clock that read 0 at `epoch`.
    pub const fn starting_at(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// The instant the clock reads 0.
    pub const fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Nanoseconds since the epoch, now (saturating after 584 years).
    #[inline]
    pub fn now(&self) -> u64 {
        self.nanos_at(Instant::now())
    }

    /// Nanoseconds from the epoch to `at` (0 for an instant before it).
    #[inline]
    pub fn nanos_at(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.epoch))
    }

    /// Time since the epoch, now.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// Time from the epoch to `at` (zero for an instant before it).
    #[inline]
    pub fn since_epoch(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// The instant `nanos` after the epoch (saturating at the furthest representable
    /// instant).
    pub fn instant(&self, nanos: u64) -> Instant {
        self.at(Duration::from_nanos(nanos))
    }

    /// The instant `since_epoch` after the epoch (saturating at the furthest representable
    /// instant).
    pub fn at(&self, since_epoch: Duration) -> Instant {
        self.epoch
            .checked_add(since_epoch)
            // About 30 years, as tokio's own "far future".
            .unwrap_or_else(|| self.epoch + Duration::from_secs(86_400 * 365 * 30))
    }
}

/// `d` in whole nanoseconds, saturating at `u64::MAX` (584 years); no `u128` arithmetic.
#[inline]
pub fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_saturate() {
        assert_eq!(nanos(Duration::from_nanos(1_500_000_001)), 1_500_000_001);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
        assert_eq!(
            nanos(Duration::from_secs(u64::MAX / 1_000_000_000 + 1)),
            u64::MAX
        );
    }

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time() {
        let clock = Clock::new();
        let before = Instant::now() - Duration::from_secs(1);
        assert_eq!(clock.nanos_at(before), 0);
        assert_eq!(clock.since_epoch(before), Duration::ZERO);
        tokio::time::advance(Duration::from_micros(3)).await;
        assert_eq!(clock.now(), 3_000);
        assert_eq!(clock.instant(3_000), Instant::now());
        assert_eq!(clock.at(Duration::from_micros(3)), Instant::now());
        assert!(clock.instant(u64::MAX) > Instant::now());
        assert_eq!(Clock::starting_at(clock.epoch()), clock);
    }
}
