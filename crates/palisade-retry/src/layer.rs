use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::config::{check_duration, check_range};
use palisade_core::{ConfigError, Listeners};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tower_layer::Layer;

use crate::backoff::{Backoff, Schedule};
use crate::budget::RetryBudget;
use crate::events::RetryEvent;
use crate::service::Retry;

pub(crate) struct Settings {
    pub(crate) max_attempts: u32,
    pub(crate) schedule: Schedule,
    pub(crate) unsafe_methods: bool,
    pub(crate) body_limit: usize,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) budget: Option<Arc<dyn RetryBudget>>,
    pub(crate) rng: Mutex<SmallRng>,
    pub(crate) listeners: Listeners<RetryEvent>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("max_attempts", &self.max_attempts)
            .field("schedule", &self.schedule)
            .field("unsafe_methods", &self.unsafe_methods)
            .field("body_limit", &self.body_limit)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("budget", &self.budget.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`RetryLayer`]; [`build`](Self::build) checks every value.
pub struct RetryBuilder {
    max_attempts: u32,
    schedule: Schedule,
    unsafe_methods: bool,
    body_limit: usize,
    attempt_timeout: Option<Duration>,
    budget: Option<Arc<dyn RetryBudget>>,
    seed: Option<u64>,
    listeners: Listeners<RetryEvent>,
}

impl fmt::Debug for RetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("max_attempts", &self.max_attempts)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl RetryBuilder {
    /// Attempts in all, counting the original, 1–10 (default 3).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// The backoff: kind, first delay, multiplier and cap (default full jitter, 100 ms,
    /// ×2, 5 s). A server-sent delay (`Retry-After`, pushback) above the cap gives up.
    #[must_use]
    pub fn backoff(
        mut self,
        kind: Backoff,
        base: Duration,
        multiplier: f64,
        cap: Duration,
    ) -> Self {
        self.schedule = Schedule {
            kind,
            base,
            multiplier,
            cap,
        };
        self
    }
    /// Also retry POST and PATCH without an `Idempotency-Key` (default `false`: only
    /// idempotent methods and keyed requests are retried, RFC 9110 §9.2.2).
    #[must_use]
    pub fn retry_unsafe_methods(mut self, yes: bool) -> Self {
        self.unsafe_methods = yes;
        self
    }
    /// Largest request body buffered for replay (default 64 KiB); a larger body is sent
    /// once and not retried.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
    /// A timeout per attempt; an attempt that runs out is retried.
    #[must_use]
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }
    /// A budget shared by every clone ([`Tps`](crate::budget::Tps),
    /// [`GrpcThrottle`](crate::budget::GrpcThrottle) or your own).
    #[must_use]
    pub fn budget(mut self, budget: impl RetryBudget) -> Self {
        self.budget = Some(Arc::new(budget));
        self
    }
    /// Seeds the jitter RNG (tests, reproducible runs).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Adds a listener for [`RetryEvent`]s.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }
    /// Validates and builds the layer.
    pub fn build(self) -> Result<RetryLayer, ConfigError> {
        check_range("max_attempts", self.max_attempts, 1, 10)?;
        let day = Duration::from_secs(86_400);
        check_duration(
            "backoff.base",
            self.schedule.base,
            Duration::from_millis(1),
            day,
        )?;
        check_duration("backoff.cap", self.schedule.cap, self.schedule.base, day)?;
        check_range("backoff.multiplier", self.schedule.multiplier, 1.0, 10.0)?;
        check_range("body_limit", self.body_limit, 0, 64 << 20)?;
        if let Some(t) = self.attempt_timeout {
            check_duration("attempt_timeout", t, Duration::from_millis(1), day)?;
        }
        // Without a seed, a random one from std's randomly keyed hasher (no RNG feature).
        let seed = self.seed.unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        let rng = SmallRng::seed_from_u64(seed);
        Ok(RetryLayer {
            settings: Arc::new(Settings {
                max_attempts: self.max_attempts,
                schedule: self.schedule,
                unsafe_methods: self.unsafe_methods,
                body_limit: self.body_limit,
                attempt_timeout: self.attempt_timeout,
                budget: self.budget,
                rng: Mutex::new(rng),
                listeners: self.listeners,
            }),
        })
    }
}

/// Applies [`Retry`]; made by [`RetryLayer::builder`]. Clones share one budget.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    settings: Arc<Settings>,
}

impl RetryLayer {
    /// A builder: 3 attempts, full jitter from 100 ms (×2, cap 5 s), idempotent methods and
    /// keyed requests only, 64 KiB replay buffer, no budget.
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            max_attempts: 3,
            schedule: Schedule {
                kind: Backoff::FullJitter,
                base: Duration::from_millis(100),
                multiplier: 2.0,
                cap: Duration::from_secs(5),
            },
            unsafe_methods: false,
            body_limit: 64 * 1024,
            attempt_timeout: None,
            budget: None,
            seed: None,
            listeners: Listeners::new(),
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.settings.clone())
    }
}
