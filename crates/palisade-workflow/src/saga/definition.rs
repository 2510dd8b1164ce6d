//! A saga's definition: ordered steps, each an action and a compensation service.

use std::fmt;
use std::time::Duration;

use palisade_core::config::{check_duration, check_instance_name, check_range};
use palisade_core::{BoxError, ConfigError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

/// Most steps in one saga.
pub const MAX_STEPS: usize = 64;
/// Most compensation attempts per step before the saga is marked stuck.
pub const MAX_COMPENSATION_ATTEMPTS: u32 = 1000;

/// The context a saga's steps share: plain data, serialised into the saga log after every
/// step. Each action returns the context, extended with what later steps (and the
/// compensations) need, such as ids the participant assigned.
pub trait SagaContext: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> SagaContext for T {}

/// What a step's action or compensation service is called with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepRequest<C> {
    /// The saga instance.
    pub saga_id: String,
    /// The step's name.
    pub step: String,
    /// `"{saga_id}/{step}"`: the same on every attempt of this step's action and of its
    /// compensation, also after a restart, so a participant can apply each at most once.
    pub idempotency_key: String,
    /// The saga's context (for a compensation: as the last completed step left it).
    pub context: C,
}

/// What to do when a restart finds this step's action started but its outcome unknown
/// (the process stopped after calling it and before logging the result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnknown {
    /// Call the action again with the same idempotency key (the participant dedupes).
    #[default]
    Retry,
    /// Compensate: this step (its compensation must accept a key whose action never
    /// applied) and every step before it, in reverse.
    Compensate,
}

type Action<C> = BoxCloneSyncService<StepRequest<C>, C, BoxError>;
type Compensation<C> = BoxCloneSyncService<StepRequest<C>, (), BoxError>;

/// One step of a saga.
pub struct Step<C> {
    pub(crate) name: String,
    pub(crate) action: Action<C>,
    pub(crate) compensation: Compensation<C>,
    pub(crate) timeout: Duration,
    pub(crate) on_unknown: OnUnknown,
}

impl<C> fmt::Debug for Step<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("on_unknown", &self.on_unknown)
            .finish_non_exhaustive()
    }
}

impl<C: SagaContext> Step<C> {
    /// A step named `name` (1 to 64 visible ASCII characters, no `/`, unique in the saga)
    /// running `action`, undone by `compensation`; timeout 30 s, [`OnUnknown::Retry`].
    ///
    /// Wrap either service in Palisade's layers (retry, breaker, timeout) before passing
    /// it: the saga treats the result after those policies as the step's outcome.
    pub fn new<A, K>(name: impl Into<String>, action: A, compensation: K) -> Self
    where
        A: Service<StepRequest<C>, Response = C, Error = BoxError> + Clone + Send + Sync + 'static,
        A::Future: Send + 'static,
        K: Service<StepRequest<C>, Response = (), Error = BoxError> + Clone + Send + Sync + 'static,
        K::Future: Send + 'static,
    {
        Self {
            name: name.into(),
            action: BoxCloneSyncService::new(action),
            compensation: BoxCloneSyncService::new(compensation),
            timeout: Duration::from_secs(30),
            on_unknown: OnUnknown::Retry,
        }
    }

    /// How long one call of the action or of the compensation may take (1 ms to 24 h); an
    /// action that times out has an unknown outcome, so its step is compensated too.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What a restart does with this step when its outcome is unknown.
    #[must_use]
    pub fn on_unknown(mut self, on_unknown: OnUnknown) -> Self {
        self.on_unknown = on_unknown;
        self
    }
}

/// A checked saga definition; build it with [`Saga::builder`].
pub struct Saga<C> {
    pub(crate) name: String,
    pub(crate) steps: Vec<Step<C>>,
    pub(crate) timeout: Duration,
    pub(crate) compensation_attempts: u32,
    pub(crate) compensation_backoff: Duration,
}

impl<C> fmt::Debug for Saga<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Saga")
            .field("name", &self.name)
            .field("steps", &self.steps)
            .field("timeout", &self.timeout)
            .field("compensation_attempts", &self.compensation_attempts)
            .field("compensation_backoff", &self.compensation_backoff)
            .finish()
    }
}

impl<C: SagaContext> Saga<C> {
    /// A builder for a saga named `name` (its instances are stored under this name).
    pub fn builder(name: impl Into<String>) -> SagaBuilder<C> {
        SagaBuilder {
            saga: Saga {
                name: name.into(),
                steps: Vec::new(),
                timeout: Duration::from_secs(300),
                compensation_attempts: 10,
                compensation_backoff: Duration::from_millis(100),
            },
        }
    }

    /// The saga's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step names, in order.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.name.as_str())
    }
}

/// Builds a [`Saga`]; [`build`](Self::build) checks every value.
#[derive(Debug)]
pub struct SagaBuilder<C> {
    saga: Saga<C>,
}

impl<C: SagaContext> SagaBuilder<C> {
    /// Appends a step.
    #[must_use]
    pub fn step(mut self, step: Step<C>) -> Self {
        self.saga.steps.push(step);
        self
    }

    /// How long the actions of one saga may take in all, counted across restarts (1 ms to
    /// 30 days; default 5 min). When it runs out the saga compensates. Compensations are
    /// not bounded by it: they run until done or stuck.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.saga.timeout = timeout;
        self
    }

    /// Attempts per compensation before the saga is marked stuck (1 to 1000; default 10).
    #[must_use]
    pub fn compensation_attempts(mut self, attempts: u32) -> Self {
        self.saga.compensation_attempts = attempts;
        self
    }

    /// The wait after a failed compensation, doubled after each further failure up to 32
    /// times this (0 to 1 h; default 100 ms).
    #[must_use]
    pub fn compensation_backoff(mut self, backoff: Duration) -> Self {
        self.saga.compensation_backoff = backoff;
        self
    }

    /// Checks the definition, naming the bad field: `name`, `steps` (1 to 64),
    /// `steps[i].name` (unique, no `/`), `steps[i].timeout`, `timeout`,
    /// `compensation_attempts`, `compensation_backoff`.
    pub fn build(self) -> Result<Saga<C>, ConfigError> {
        let s = self.saga;
        check_instance_name("name", &s.name)?;
        if s.steps.is_empty() || s.steps.len() > MAX_STEPS {
            return Err(ConfigError::new(
                "steps",
                format!("must hold 1 to {MAX_STEPS} steps (got {})", s.steps.len()),
            ));
        }
        for (i, step) in s.steps.iter().enumerate() {
            let within = format!("steps[{i}]");
            check_instance_name("name", &step.name).map_err(|e| e.within(&within))?;
            if step.name.len() > 64 || step.name.contains('/') {
                return Err(
                    ConfigError::new("name", "must be at most 64 characters, without `/`")
                        .within(&within),
                );
            }
            if s.steps[..i].iter().any(|o| o.name == step.name) {
                return Err(ConfigError::new("name", "must be unique in the saga").within(&within));
            }
            check_duration(
                "timeout",
                step.timeout,
                Duration::from_millis(1),
                Duration::from_secs(86_400),
            )
            .map_err(|e| e.within(&within))?;
        }
        check_duration(
            "timeout",
            s.timeout,
            Duration::from_millis(1),
            Duration::from_secs(30 * 86_400),
        )?;
        check_range(
            "compensation_attempts",
            s.compensation_attempts,
            1,
            MAX_COMPENSATION_ATTEMPTS,
        )?;
        check_duration(
            "compensation_backoff",
            s.compensation_backoff,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        Ok(s)
    }
}
