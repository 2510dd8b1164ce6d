//! [`RetryLayer`]: the settings, shared by every service it builds.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::{InstanceName, Listeners};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tower_layer::Layer;

use crate::backoff::Backoff;
use crate::budget::{Budget, KeyedBudget, TpsBudget};
use crate::events::RetryEvent;
use crate::policy::{DefaultPredicate, IDEMPOTENCY_KEY, is_idempotent};
use crate::service::Retry;

/// Default replay buffer limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Layer that retries failed requests; see the [crate docs](crate).
///
/// Defaults: 3 attempts, full-jitter backoff 100 ms × 2 capped at 10 s, a
/// [`TpsBudget`] of (10 s, 10/s, 20 %), 64 KiB body replay buffer, no per-attempt timeout,
/// only idempotent or `Idempotency-Key` requests retried, [`DefaultPredicate`].
pub struct RetryLayer<P = DefaultPredicate> {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) rng: Arc<Mutex<SmallRng>>,
    pub(crate) budget: Option<Arc<dyn Budget>>,
    pub(crate) per_host: Option<Arc<KeyedBudget>>,
    pub(crate) listeners: Listeners<RetryEvent>,
    pub(crate) body_limit: usize,
    pub(crate) per_attempt_timeout: Option<Duration>,
    pub(crate) retry_unsafe: bool,
    pub(crate) predicate: P,
}

impl<P: Clone> Clone for RetryLayer<P> {
    fn clone(&self) -> Self {
        Self {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            rng: self.rng.clone(),
            budget: self.budget.clone(),
            per_host: self.per_host.clone(),
            listeners: self.listeners.clone(),
            body_limit: self.body_limit,
            per_attempt_timeout: self.per_attempt_timeout,
            retry_unsafe: self.retry_unsafe,
            predicate: self.predicate.clone(),
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for RetryLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .field("per_host", &self.per_host)
            .field("body_limit", &self.body_limit)
            .field("per_attempt_timeout", &self.per_attempt_timeout)
            .field("retry_unsafe", &self.retry_unsafe)
            .field("predicate", &self.predicate)
            .finish_non_exhaustive()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayer {
    /// A layer with the defaults.
    pub fn new() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            rng: Arc::new(Mutex::new(SmallRng::from_rng(&mut rand::rng()))),
            budget: Some(Arc::new(TpsBudget::default())),
            per_host: None,
            listeners: Listeners::new().named("retry"),
            body_limit: DEFAULT_BODY_LIMIT,
            per_attempt_timeout: None,
            retry_unsafe: false,
            predicate: DefaultPredicate,
        }
    }
}

impl<P> RetryLayer<P> {
    /// Attempts including the first (at least 1; 1 disables retries).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The backoff between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Seeds the jitter RNG (`SmallRng::seed_from_u64`) for reproducible delays.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed)));
        self
    }

    /// The retry budget, shared by every service this layer builds and their clones.
    /// Replaces a [`budget_per_host`](Self::budget_per_host).
    pub fn budget(mut self, budget: impl Budget) -> Self {
        self.budget = Some(Arc::new(budget));
        self.per_host = None;
        self
    }

    /// A budget already shared with other layers. Replaces a
    /// [`budget_per_host`](Self::budget_per_host).
    pub fn shared_budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.budget = Some(budget);
        self.per_host = None;
        self
    }

    /// One budget per upstream host (the request's authority), in a bounded store;
    /// replaces the shared budget. See [`KeyedBudget`].
    pub fn budget_per_host(mut self, budgets: KeyedBudget) -> Self {
        self.per_host = Some(Arc::new(budgets));
        self.budget = None;
        self
    }

    /// No retry budget (only max attempts limit retries).
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self.per_host = None;
        self
    }

    /// The per-host budgets, when set (to read how many hosts are kept).
    pub fn get_budget_per_host(&self) -> Option<&Arc<KeyedBudget>> {
        self.per_host.as_ref()
    }

    /// The replay buffer limit in bytes; a larger request body is sent once, not retried.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Fails an attempt with [`Elapsed`](palisade_core::Elapsed) after `timeout` (then
    /// retried like any error).
    pub fn per_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.per_attempt_timeout = Some(timeout);
        self
    }

    /// Also retry non-idempotent methods (POST, PATCH, CONNECT) without an
    /// `Idempotency-Key`. Off by default (RFC 9110 §9.2.2).
    pub fn retry_unsafe_methods(mut self, yes: bool) -> Self {
        self.retry_unsafe = yes;
        self
    }

    /// The layer's instance name, carried by its events so metrics label it
    /// (`retry="payments"`). Default `"retry"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }

    /// Adds an event listener.
    pub fn on_event(mut self, f: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }

    /// Replaces what is retried.
    pub fn predicate<Q>(self, predicate: Q) -> RetryLayer<Q> {
        RetryLayer {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            rng: self.rng,
            budget: self.budget,
            per_host: self.per_host,
            listeners: self.listeners,
            body_limit: self.body_limit,
            per_attempt_timeout: self.per_attempt_timeout,
            retry_unsafe: self.retry_unsafe,
            predicate,
        }
    }

    /// The configured max attempts.
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured backoff.
    pub fn get_backoff(&self) -> Backoff {
        self.backoff
    }
}

/// What every service built by one layer shares (one `Arc`).
pub(crate) struct Shared<P> {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) rng: Arc<Mutex<SmallRng>>,
    pub(crate) budget: Option<Arc<dyn Budget>>,
    pub(crate) per_host: Option<Arc<KeyedBudget>>,
    pub(crate) listeners: Listeners<RetryEvent>,
    pub(crate) body_limit: usize,
    pub(crate) per_attempt_timeout: Option<Duration>,
    pub(crate) retry_unsafe: bool,
    pub(crate) predicate: P,
}

impl<P> Shared<P> {
    /// The budget of the host `authority` when budgets are per host (`None` otherwise: the
    /// shared budget, if any, applies). Requests without an authority share the empty key;
    /// a store that cannot make room (never, unpinned) falls back to the shared budget.
    pub(crate) fn host_budget(&self, authority: Option<&str>) -> Option<Arc<dyn Budget>> {
        self.per_host
            .as_ref()
            .and_then(|k| k.budget_for(authority.unwrap_or("")))
    }

    /// Called once per request, by every request type: deposits into the budget (the
    /// host's, `host`, when budgets are per host) and says whether the request may be
    /// retried (more than one attempt allowed, and a safe method, an `Idempotency-Key`, or
    /// unsafe methods allowed). `body_len` is the body's known length (or lower bound);
    /// over the replay limit, [`RetryEvent::BodyTooLarge`] is emitted and the request is
    /// not retried.
    pub(crate) fn admit(
        &self,
        method: &http::Method,
        headers: &http::HeaderMap,
        body_len: u64,
        host: Option<&dyn Budget>,
    ) -> bool {
        if let Some(b) = host.or(self.budget.as_deref()) {
            b.deposit();
        }
        let retryable = self.max_attempts > 1
            && (self.retry_unsafe
                || is_idempotent(method)
                || headers.contains_key(IDEMPOTENCY_KEY));
        if retryable && body_len > self.body_limit as u64 {
            let limit = self.body_limit;
            self.listeners
                .emit_named(|instance| RetryEvent::BodyTooLarge { instance, limit });
            return false;
        }
        retryable
    }
}

impl<P: Clone> RetryLayer<P> {
    pub(crate) fn shared(&self) -> Arc<Shared<P>> {
        Arc::new(Shared {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            rng: self.rng.clone(),
            budget: self.budget.clone(),
            per_host: self.per_host.clone(),
            listeners: self.listeners.clone(),
            body_limit: self.body_limit,
            per_attempt_timeout: self.per_attempt_timeout,
            retry_unsafe: self.retry_unsafe,
            predicate: self.predicate.clone(),
        })
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;
    fn layer(&self, inner: S) -> Retry<S, P> {
        Retry::from_shared(inner, self.shared())
    }
}
