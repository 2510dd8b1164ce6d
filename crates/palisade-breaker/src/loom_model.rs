//! The lock-free outcome window, opened up for the `loom` model in `tests/loom.rs`. Only
//! built with `RUSTFLAGS="--cfg loom"`; not part of the API.

use std::sync::Arc;
use std::time::Duration;

use crate::machine::Settings;
use crate::window::Window;
use crate::{BreakerConfig, SlidingWindow, Totals};

/// One breaker's window with its trip settings, shared by clones.
#[derive(Debug, Clone)]
pub struct Model {
    window: Arc<Window>,
    settings: Arc<Settings>,
}

impl Model {
    /// The window and thresholds of `config` (which must be valid).
    pub fn new(config: &BreakerConfig) -> Self {
        let settings = config.validate().expect("a valid config");
        Self {
            window: Arc::new(Window::new(settings.window)),
            settings: Arc::new(settings),
        }
    }

    /// Records an outcome at `elapsed` as a CLOSED breaker does without its lock, and
    /// returns whether that thread would take the lock to open the breaker.
    pub fn record(&self, failed: bool, slow: bool, elapsed: Duration) -> bool {
        let changed = self.window.add(failed, slow, elapsed);
        self.settings.may_trip(&self.window, changed)
    }

    /// An ignored outcome at `elapsed`: only moves a time window on. Returns whether that
    /// thread would take the lock.
    pub fn ignore(&self, elapsed: Duration) -> bool {
        let changed = self.window.advance_shared(elapsed);
        self.settings.may_trip(&self.window, changed)
    }

    /// Empties the window (a transition does it under the breaker's lock, while outcomes of
    /// calls admitted before may still be recorded).
    pub fn clear(&self) {
        self.window.clear();
    }

    /// The running totals, read as the breaker reads them.
    pub fn totals(&self) -> Totals {
        self.window.totals()
    }

    /// What the ring's slots or the buckets hold, recounted one by one.
    pub fn recount(&self) -> Totals {
        self.window.recount()
    }

    /// The running totals as signed numbers (a counter below zero shows as negative).
    pub fn raw_totals(&self) -> (i64, i64, i64) {
        self.window.raw_totals()
    }

    /// Whether totals `t` open a CLOSED breaker.
    pub fn trips(&self, t: Totals) -> bool {
        self.settings.trips(t)
    }

    /// The window kind.
    pub fn kind(&self) -> SlidingWindow {
        self.settings.window
    }
}
