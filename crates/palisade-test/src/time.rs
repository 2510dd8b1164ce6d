//! Helpers over tokio's paused clock (`#[tokio::test(start_paused = true)]`).

use std::time::Duration;

use tokio::time::Instant;

/// Advances the paused clock to `instant` (no-op if it is already past), running every timer
/// due on the way.
pub async fn advance_to(instant: Instant) {
    let now = Instant::now();
    if instant > now {
        tokio::time::advance(instant - now).await;
    }
}

/// Advances the paused clock by `by`.
pub async fn advance(by: Duration) {
    tokio::time::advance(by).await;
}

/// Lets every spawned task run until it waits on something that is not ready (a timer, a
/// channel), without moving the clock: yields to the scheduler a fixed 64 times, which is
/// enough for chains of wake-ups in tests.
pub async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// The tokio time elapsed since `start`.
pub fn since(start: Instant) -> Duration {
    Instant::now().saturating_duration_since(start)
}
