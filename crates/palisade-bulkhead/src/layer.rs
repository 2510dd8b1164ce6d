use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::config::check_instance_name;
use palisade_core::{ConfigError, InstanceName, Listeners};
use tower_layer::Layer;

use crate::adaptive::{Adaptive, Aimd, Gradient};
use crate::admission::Admission;
use crate::config::{BulkheadConfig, BulkheadMode};
use crate::events::BulkheadEvent;
use crate::handle::BulkheadHandle;
use crate::keyed::{KeyedBulkheadLayer, KeyedShared, Template};
use crate::priority::NoPriority;
use crate::release::{OnBodyEnd, OnResponse};
use crate::service::Bulkhead;

/// Builds a [`BulkheadLayer`]; [`build`](Self::build) checks every setting.
#[derive(Debug, Clone)]
pub struct BulkheadBuilder<P = NoPriority, Rel = OnBodyEnd> {
    config: BulkheadConfig,
    lanes: usize,
    reserved: Vec<usize>,
    priority: P,
    adaptive: Option<Adaptive>,
    listeners: Listeners<BulkheadEvent>,
    name: Option<InstanceName>,
    key_idle: Duration,
    _release: PhantomData<fn() -> Rel>,
}

/// The instance name of an unnamed bulkhead.
const DEFAULT_NAME: &str = "bulkhead";

/// Default [`key_idle_timeout`](BulkheadBuilder::key_idle_timeout): 1 hour.
pub const DEFAULT_KEY_IDLE: Duration = Duration::from_secs(3_600);
/// Longest accepted [`key_idle_timeout`](BulkheadBuilder::key_idle_timeout): 7 days.
const MAX_KEY_IDLE: Duration = Duration::from_secs(7 * 86_400);
/// Longest accepted adaptive latency threshold: 1 hour (as `max_queue_wait`).
const MAX_LATENCY_THRESHOLD: Duration = Duration::from_secs(3_600);

impl<P, Rel> BulkheadBuilder<P, Rel> {
    /// Starts from a (deserialized) config.
    #[must_use]
    pub fn config(mut self, config: BulkheadConfig) -> Self {
        if let Some(a) = &config.adaptive {
            self.adaptive = Some(Adaptive::Aimd(a.into()));
        }
        if let Some(name) = &config.name {
            self.name = Some(name.into());
        }
        self.config = config;
        self
    }
    /// The bulkhead's instance name, carried by its events and handle so metrics label it
    /// (`bulkhead="db"`): 1–128 visible ASCII characters, checked by `build` (default
    /// `"bulkhead"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<InstanceName>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Most calls inside at once (default 64).
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.config.max_concurrent = n;
        self
    }
    /// Most requests waiting for a slot (default 0: shed at once when full).
    #[must_use]
    pub fn max_queue(mut self, n: usize) -> Self {
        self.config.max_queue = n;
        self
    }
    /// Longest time a request may wait in the queue (default 1 s).
    #[must_use]
    pub fn max_queue_wait(mut self, d: Duration) -> Self {
        self.config.max_queue_wait = d;
        self
    }
    /// [`BulkheadMode::Shed`] (default; servers) or [`BulkheadMode::Backpressure`] (clients, pipelines).
    #[must_use]
    pub fn mode(mut self, mode: BulkheadMode) -> Self {
        self.config.mode = mode;
        self
    }
    /// Priority lanes: `priority` assigns each request a lane in `0..reserved.len()`;
    /// `reserved[lane]` slots are kept out of reach of that lane for higher ones (must not
    /// increase with the lane; the top lane's is usually 0). E.g. `[4, 0]`: low priority can
    /// never take the last 4 slots.
    #[must_use]
    pub fn priority<P2>(self, priority: P2, reserved: Vec<usize>) -> BulkheadBuilder<P2, Rel> {
        BulkheadBuilder {
            config: self.config,
            lanes: reserved.len(),
            reserved,
            priority,
            adaptive: self.adaptive,
            listeners: self.listeners,
            name: self.name,
            key_idle: self.key_idle,
            _release: PhantomData,
        }
    }
    /// Frees the slot as soon as the response arrives instead of at the end of its body;
    /// needed for non-HTTP services.
    #[must_use]
    pub fn release_on_response(self) -> BulkheadBuilder<P, OnResponse> {
        BulkheadBuilder {
            config: self.config,
            lanes: self.lanes,
            reserved: self.reserved,
            priority: self.priority,
            adaptive: self.adaptive,
            listeners: self.listeners,
            name: self.name,
            key_idle: self.key_idle,
            _release: PhantomData,
        }
    }
    /// Adapts the limit to observed latency ([`Aimd`]) between `aimd.min` and `aimd.max`,
    /// starting from `max_concurrent` (clamped into that range). Each slot then reads the
    /// clock twice.
    #[must_use]
    pub fn adaptive(mut self, aimd: Aimd) -> Self {
        self.adaptive = Some(Adaptive::Aimd(aimd));
        self
    }
    /// Adapts the limit with the [`Gradient`] algorithm between `gradient.min` and
    /// `gradient.max`, starting from `max_concurrent` (clamped into that range).
    #[must_use]
    pub fn adaptive_gradient(mut self, gradient: Gradient) -> Self {
        self.adaptive = Some(Adaptive::gradient(gradient));
        self
    }
    /// For [`build_keyed`](Self::build_keyed): a key's bulkhead is dropped after `idle`
    /// without requests, unless in use (1 ms–7 days, checked by `build_keyed`; default 1 h).
    #[must_use]
    pub fn key_idle_timeout(mut self, idle: Duration) -> Self {
        self.key_idle = idle;
        self
    }
    /// Adds a listener for [`BulkheadEvent`]s.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&BulkheadEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }
    /// Validates and builds the layer (one bulkhead shared by all its services and clones).
    pub fn build(self) -> Result<BulkheadLayer<P, Rel>, ConfigError> {
        let limit = self.validate()?;
        Ok(BulkheadLayer {
            admission: Arc::new(Admission::new(
                limit,
                self.config.max_queue,
                self.reserved.into_boxed_slice(),
                self.adaptive,
                self.listeners
                    .named(self.name.unwrap_or(InstanceName::new_static(DEFAULT_NAME))),
            )),
            priority: self.priority,
            mode: self.config.mode,
            max_queue_wait: self.config.max_queue_wait,
            _release: PhantomData,
        })
    }

    /// Validates and builds a per-key layer: one bulkhead with these settings per key that
    /// `extractor` finds (e.g. per tenant), at most `max_keys` (1–10,000,000) keys at once.
    /// A new key at `max_keys` evicts the least recently used idle key (nothing in flight
    /// or queued); if none is idle, the request is refused with `BulkheadFull`. Keys unused
    /// for [`key_idle_timeout`](Self::key_idle_timeout) are dropped. Shed mode only (the
    /// key is known only in `call`). See [`KeyedBulkhead`](crate::KeyedBulkhead).
    pub fn build_keyed<K>(
        self,
        extractor: K,
        max_keys: usize,
    ) -> Result<KeyedBulkheadLayer<K, P, Rel>, ConfigError> {
        let limit = self.validate()?;
        palisade_core::config::check_range("max_keys", max_keys, 1, 10_000_000)?;
        palisade_core::config::check_duration(
            "key_idle_timeout",
            self.key_idle,
            Duration::from_millis(1),
            MAX_KEY_IDLE,
        )?;
        if self.config.mode != BulkheadMode::Shed {
            return Err(ConfigError::new(
                "mode",
                "a keyed bulkhead must use `shed` (the key is only known in `call`)",
            ));
        }
        Ok(KeyedBulkheadLayer {
            shared: Arc::new(KeyedShared::new(
                Template {
                    limit,
                    max_queue: self.config.max_queue,
                    reserve: self.reserved.into_boxed_slice(),
                    adaptive: self.adaptive,
                    listeners: self
                        .listeners
                        .named(self.name.unwrap_or(InstanceName::new_static(DEFAULT_NAME))),
                },
                max_keys,
                self.key_idle,
            )),
            extractor,
            priority: self.priority,
            max_queue_wait: self.config.max_queue_wait,
            _release: PhantomData,
        })
    }

    /// Checks every setting; returns the initial limit.
    fn validate(&self) -> Result<usize, ConfigError> {
        self.config.validate()?;
        if let Some(name) = &self.name {
            check_instance_name("name", name)?;
        }
        palisade_core::config::check_range("lanes", self.lanes, 1, 16)?;
        for (i, r) in self.reserved.iter().enumerate() {
            if *r >= self.config.max_concurrent {
                return Err(ConfigError::new(
                    format!("reserved[{i}]"),
                    format!(
                        "must be below max_concurrent ({}) or lane {i} could never run (got {r})",
                        self.config.max_concurrent
                    ),
                ));
            }
            if i > 0 && *r > self.reserved[i - 1] {
                return Err(ConfigError::new(
                    format!("reserved[{i}]"),
                    "must not exceed the reserve of a lower lane (higher lanes get more slots)",
                ));
            }
        }
        let mut limit = self.config.max_concurrent;
        if let Some(a) = &self.adaptive {
            let (min, max) = a.bounds();
            palisade_core::config::check_range("adaptive.min", min, 1, 1_000_000)?;
            palisade_core::config::check_range("adaptive.max", max, min, 1_000_000)?;
            match a {
                Adaptive::Aimd(a) => {
                    if !(a.backoff > 0.0 && a.backoff < 1.0) {
                        return Err(ConfigError::new(
                            "adaptive.backoff",
                            format!("must be between 0 and 1, exclusive (got {})", a.backoff),
                        ));
                    }
                    palisade_core::config::check_duration(
                        "adaptive.latency_threshold",
                        a.latency_threshold,
                        Duration::from_nanos(1),
                        MAX_LATENCY_THRESHOLD,
                    )?;
                }
                Adaptive::Gradient { cfg, .. } => {
                    palisade_core::config::check_range(
                        "adaptive.long_window",
                        cfg.long_window,
                        1,
                        1_000_000,
                    )?;
                    if !(cfg.tolerance >= 1.0 && cfg.tolerance <= 100.0) {
                        return Err(ConfigError::new(
                            "adaptive.tolerance",
                            format!("must be between 1 and 100 (got {})", cfg.tolerance),
                        ));
                    }
                    if !(cfg.smoothing > 0.0 && cfg.smoothing <= 1.0) {
                        return Err(ConfigError::new(
                            "adaptive.smoothing",
                            format!("must be in (0, 1] (got {})", cfg.smoothing),
                        ));
                    }
                }
            }
            if let Some(r) = self.reserved.iter().max().filter(|r| **r >= min) {
                return Err(ConfigError::new(
                    "adaptive.min",
                    format!("must be above every lane reserve ({r}) or a lane could starve"),
                ));
            }
            limit = limit.clamp(min, max);
        }
        Ok(limit)
    }
}

/// Applies a [`Bulkhead`]; made by [`BulkheadLayer::builder`].
#[derive(Debug)]
pub struct BulkheadLayer<P = NoPriority, Rel = OnBodyEnd> {
    pub(crate) admission: Arc<Admission>,
    pub(crate) priority: P,
    pub(crate) mode: BulkheadMode,
    pub(crate) max_queue_wait: Duration,
    _release: PhantomData<fn() -> Rel>,
}

impl<P: Clone, Rel> Clone for BulkheadLayer<P, Rel> {
    fn clone(&self) -> Self {
        Self {
            admission: self.admission.clone(),
            priority: self.priority.clone(),
            mode: self.mode,
            max_queue_wait: self.max_queue_wait,
            _release: PhantomData,
        }
    }
}

impl BulkheadLayer {
    /// A builder: 64 slots, no queue, shed mode, slot held until the response body ends.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder {
            config: BulkheadConfig::default(),
            lanes: 1,
            reserved: vec![0],
            priority: NoPriority,
            adaptive: None,
            listeners: Listeners::new(),
            name: None,
            key_idle: DEFAULT_KEY_IDLE,
            _release: PhantomData,
        }
    }
}

impl<P, Rel> BulkheadLayer<P, Rel> {
    /// A handle on the shared bulkhead.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle {
            admission: self.admission.clone(),
        }
    }
}

impl<S, P: Clone, Rel> Layer<S> for BulkheadLayer<P, Rel> {
    type Service = Bulkhead<S, P, Rel>;
    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(inner, self)
    }
}
