use std::sync::Arc;
use std::time::Duration;

use palisade_core::config::check_instance_name;
use palisade_core::{ConfigError, DefaultClassifier, InstanceName, Listeners};
use tower_layer::Layer;

use crate::config::{BreakerConfig, FleetConfig};
use crate::events::BreakerEvent;
use crate::handle::BreakerHandle;
use crate::service::CircuitBreaker;
use crate::shared::Breaker;
use crate::window::SlidingWindow;

/// Builds a [`CircuitBreakerLayer`]; every setting is checked by [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct CircuitBreakerBuilder<C = DefaultClassifier> {
    config: BreakerConfig,
    classifier: C,
    name: Option<InstanceName>,
    listeners: Listeners<BreakerEvent>,
    #[cfg(feature = "redis")]
    redis: Option<RedisConn>,
}

/// A connection manager with a `Debug` that shows nothing of it.
#[cfg(feature = "redis")]
#[derive(Clone)]
struct RedisConn(redis::aio::ConnectionManager);

#[cfg(feature = "redis")]
impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionManager")
    }
}

/// The instance name of an unnamed breaker.
pub(crate) const DEFAULT_NAME: &str = "breaker";

impl CircuitBreakerBuilder {
    fn new() -> Self {
        Self {
            config: BreakerConfig::default(),
            classifier: DefaultClassifier::new(),
            name: None,
            listeners: Listeners::new(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl<C> CircuitBreakerBuilder<C> {
    /// Starts from a (deserialized) config.
    #[must_use]
    pub fn config(mut self, config: BreakerConfig) -> Self {
        if let Some(name) = &config.name {
            self.name = Some(name.into());
        }
        self.config = config;
        self
    }
    /// The breaker's instance name, carried by its events and handle so metrics label it
    /// (`breaker="payments"`; e.g. the upstream): 1–128 visible ASCII characters, checked by
    /// `build` (default `"breaker"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<InstanceName>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The sliding window (default: the last 100 calls).
    #[must_use]
    pub fn window(mut self, window: SlidingWindow) -> Self {
        self.config.window = window;
        self
    }
    /// Calls needed before rates count (default 100).
    #[must_use]
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.config.minimum_calls = n;
        self
    }
    /// Failure rate in percent that opens the breaker (default 50).
    #[must_use]
    pub fn failure_rate_threshold(mut self, pct: f32) -> Self {
        self.config.failure_rate_threshold = pct;
        self
    }
    /// Slow-call rate in percent that opens it (default 100) and what counts as slow
    /// (default 60 s).
    #[must_use]
    pub fn slow_calls(mut self, rate_pct: f32, slower_than: Duration) -> Self {
        self.config.slow_call_rate_threshold = rate_pct;
        self.config.slow_call_duration = slower_than;
        self
    }
    /// How long OPEN lasts (default 60 s).
    #[must_use]
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.config.wait_in_open = wait;
        self.config.max_wait_in_open = self.config.max_wait_in_open.max(wait);
        self
    }
    /// Grows the OPEN wait by `multiplier` with each consecutive opening, up to `cap`.
    #[must_use]
    pub fn exponential_wait(mut self, multiplier: f64, cap: Duration) -> Self {
        self.config.wait_multiplier = multiplier;
        self.config.max_wait_in_open = cap;
        self
    }
    /// Probe calls admitted in HALF_OPEN (default 10).
    #[must_use]
    pub fn permitted_in_half_open(mut self, n: u32) -> Self {
        self.config.permitted_in_half_open = n;
        self
    }
    /// Reopens when probes have not decided within `max` (default: wait forever).
    #[must_use]
    pub fn max_wait_in_half_open(mut self, max: Duration) -> Self {
        self.config.max_wait_in_half_open = max;
        self
    }
    /// Moves OPEN → HALF_OPEN (and a stalled HALF_OPEN → OPEN) when the wait ends, from a
    /// timer task spawned on the current Tokio runtime at each such transition, instead of
    /// on the next call (default: lazy, as Resilience4j). Without a runtime at the time of
    /// the transition it stays lazy.
    #[must_use]
    pub fn automatic_transition(mut self, on: bool) -> Self {
        self.config.automatic_transition = on;
        self
    }
    /// Replaces the classifier deciding what is a failure (default: palisade-core's
    /// [`DefaultClassifier`]; use [`ErrorsAsFailures`](palisade_core::ErrorsAsFailures) for
    /// non-HTTP services).
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            config: self.config,
            classifier,
            name: self.name,
            listeners: self.listeners,
            #[cfg(feature = "redis")]
            redis: self.redis,
        }
    }
    /// Shares this breaker with every instance of the same fleet name through Redis (see
    /// the crate docs, "Sharing state across a fleet"); the settings are `fleet`'s, or the
    /// defaults (the breaker's name, `palisade:cb:`, 100 ms) without one. Needs a time
    /// window, and [`build`](Self::build) must run inside a Tokio runtime (it starts the
    /// flush task).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    #[must_use]
    pub fn redis(mut self, conn: redis::aio::ConnectionManager) -> Self {
        self.redis = Some(RedisConn(conn));
        if self.config.fleet.is_none() {
            self.config.fleet = Some(FleetConfig::default());
        }
        self
    }
    /// The fleet settings (the config's `fleet` section); the Redis connection is given
    /// with `redis` (feature `redis`).
    #[must_use]
    pub fn fleet(mut self, fleet: FleetConfig) -> Self {
        self.config.fleet = Some(fleet);
        self
    }
    /// Adds a listener for [`BreakerEvent`]s.
    ///
    /// State changes are delivered synchronously, in the order they happen, while the
    /// breaker's internal lock is held: a listener may read [`BreakerHandle::state`] but must
    /// not call the handle's other methods (they take the same lock), and should be quick.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&BreakerEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }
    /// Validates the settings and builds the layer (one breaker, shared by every service
    /// the layer makes and all their clones).
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, ConfigError> {
        let settings = self.config.validate()?;
        let name = match self.name {
            Some(name) => {
                check_instance_name("name", &name)?;
                name
            }
            None => InstanceName::new_static(DEFAULT_NAME),
        };
        let Some(fleet) = &self.config.fleet else {
            return Ok(CircuitBreakerLayer {
                breaker: Breaker::new(settings, self.listeners.named(name)),
                classifier: self.classifier,
            });
        };
        #[cfg(feature = "redis")]
        {
            let Some(RedisConn(conn)) = self.redis else {
                return Err(ConfigError::new(
                    "fleet",
                    "a fleet breaker needs a Redis connection: CircuitBreakerBuilder::redis",
                ));
            };
            let fleet_name = fleet.name.as_deref().unwrap_or(&name).to_owned();
            let link = crate::fleet::redis::Link::new(
                conn,
                &fleet.key_prefix,
                &fleet_name,
                &settings,
                fleet.flush_interval,
            );
            let every = fleet.flush_interval;
            let breaker = Breaker::with_fleet(settings, self.listeners.named(name), Some(every));
            if crate::fleet::redis::spawn(&breaker, link, every).is_none() {
                return Err(ConfigError::new(
                    "fleet",
                    "a fleet breaker must be built inside a Tokio runtime (it starts its flush task)",
                ));
            }
            Ok(CircuitBreakerLayer {
                breaker,
                classifier: self.classifier,
            })
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (fleet, settings);
            Err(ConfigError::new(
                "fleet",
                "sharing a breaker across a fleet needs palisade-breaker's `redis` feature",
            ))
        }
    }
}

/// Applies a [`CircuitBreaker`]. Made by [`CircuitBreakerLayer::builder`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    breaker: Arc<Breaker>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A builder with Resilience4j's defaults.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// A handle on this layer's breaker.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            breaker: self.breaker.clone(),
        }
    }
}

impl BreakerConfig {
    /// Validates every field and builds the layer (one breaker, shared by every service the
    /// layer makes and all their clones), with the default classifier and name. Use
    /// [`CircuitBreakerLayer::builder`]`().config(..)` to set those too.
    ///
    /// ```
    /// use palisade_breaker::{BreakerConfig, CircuitBreakerLayer};
    /// let mut config = BreakerConfig::default();
    /// config.minimum_calls = 10;
    /// let layer: CircuitBreakerLayer = config.build()?;
    /// let same = CircuitBreakerLayer::try_from(&config)?;
    /// # let _ = (layer, same);
    /// config.minimum_calls = 0;
    /// assert_eq!(config.build().unwrap_err().field(), "minimum_calls");
    /// # Ok::<(), palisade_core::ConfigError>(())
    /// ```
    pub fn build(&self) -> Result<CircuitBreakerLayer, ConfigError> {
        CircuitBreakerLayer::builder().config(self.clone()).build()
    }
}

impl TryFrom<&BreakerConfig> for CircuitBreakerLayer {
    type Error = ConfigError;
    fn try_from(config: &BreakerConfig) -> Result<Self, ConfigError> {
        config.build()
    }
}

impl TryFrom<BreakerConfig> for CircuitBreakerLayer {
    type Error = ConfigError;
    fn try_from(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::builder().config(config).build()
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.breaker.clone(), self.classifier.clone())
    }
}
