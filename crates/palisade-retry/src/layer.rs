//! [`RetryLayer`]: the settings, shared by every service it builds.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::request::{AnyRequest, Http};
use palisade_core::{ErrorsAsFailures, InstanceName, Listeners};
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
///
/// The mode `M` says which requests the services it builds take: [`Http`] (the default,
/// built by [`new`](RetryLayer::new): `http::Request`s with body replay, and
/// `reqwest::Request`s) or [`AnyRequest`] (built by
/// [`any_request`](RetryLayer::any_request): any request type that can be sent again, see
/// [`ReplayRequest`](crate::ReplayRequest)).
pub struct RetryLayer<P = DefaultPredicate, M = Http> {
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
    pub(crate) mode: PhantomData<fn() -> M>,
}

impl<P: Clone, M> Clone for RetryLayer<P, M> {
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
            mode: PhantomData,
        }
    }
}

impl<P: fmt::Debug, M> fmt::Debug for RetryLayer<P, M> {
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

fn defaults<P, M>(predicate: P) -> RetryLayer<P, M> {
    RetryLayer {
        max_attempts: 3,
        backoff: Backoff::default(),
        rng: Arc::new(Mutex::new(SmallRng::from_rng(&mut rand::rng()))),
        budget: Some(Arc::new(TpsBudget::default())),
        per_host: None,
        listeners: Listeners::new().named("retry"),
        body_limit: DEFAULT_BODY_LIMIT,
        per_attempt_timeout: None,
        retry_unsafe: false,
        predicate,
        mode: PhantomData,
    }
}

impl RetryLayer<ErrorsAsFailures, AnyRequest> {
    /// A layer for services of any request type that can be sent again
    /// ([`ReplayRequest`](crate::ReplayRequest): every `Clone` type), with the same
    /// defaults, backoff, budget and events as [`new`](RetryLayer::new). What is retried:
    /// every `Err` ([`ErrorsAsFailures`]; a rejection's own `retry_after`, such as an inner
    /// breaker's remaining open time, replaces the backoff); every `Ok` is a success.
    /// Replace it with [`predicate`](RetryLayer::predicate) (a [`predicate_fn`](crate::predicate_fn)
    /// closure) or [`classifier`](RetryLayer::classifier).
    ///
    /// No method or header says whether such a request is safe to send twice: a request
    /// type that can be replayed is retried. Make the sends idempotent (a message id the
    /// broker deduplicates, an upsert), or keep [`max_attempts`](RetryLayer::max_attempts)
    /// at 1. The body limit and [`retry_unsafe_methods`](RetryLayer::retry_unsafe_methods)
    /// do not apply, and no [`Deadline`](palisade_core::Deadline) travels in such a request
    /// (an outer timeout still bounds all attempts by dropping the future).
    pub fn any_request() -> Self {
        defaults(ErrorsAsFailures)
    }
}

impl RetryLayer {
    /// A layer with the defaults.
    pub fn new() -> Self {
        defaults(DefaultPredicate)
    }
}

impl<P, M> RetryLayer<P, M> {
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
    pub fn predicate<Q>(self, predicate: Q) -> RetryLayer<Q, M> {
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
            mode: PhantomData,
        }
    }

    /// Replaces what is retried with a [`Classifier`](palisade_core::Classifier) (the
    /// breaker's vocabulary, e.g. a [`classify_fn`](palisade_core::classify_fn) closure over
    /// `Result<&Res, &BoxError>`): a failure is retried (after the rejection's own
    /// `retry_after`, if the error is one), a success is credited, an ignored result is
    /// returned as is. See [`FromClassifier`](crate::policy::FromClassifier).
    pub fn classifier<C>(self, classifier: C) -> RetryLayer<crate::policy::FromClassifier<C>, M> {
        self.predicate(crate::policy::FromClassifier::new(classifier))
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

    /// [`admit`](Self::admit) for a request of any type: deposits into the budget and says
    /// whether more than one attempt is allowed (the request type being replayable is the
    /// caller's part). A request of any type has no host: it uses the shared budget even
    /// when budgets are per host (as its attempts withdraw from it).
    #[inline]
    pub(crate) fn admit_any(&self) -> bool {
        if let Some(b) = &self.budget {
            b.deposit();
        }
        self.max_attempts > 1
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

impl<P: Clone, M> RetryLayer<P, M> {
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

impl<S, P: Clone, M> Layer<S> for RetryLayer<P, M> {
    type Service = Retry<S, P, M>;
    fn layer(&self, inner: S) -> Retry<S, P, M> {
        Retry::from_shared(inner, self.shared())
    }
}
