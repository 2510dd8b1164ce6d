//! Live gauges sampled from layer handles: [`watch_bulkhead`] and [`watch_breaker`].
//!
//! Events tell when something changes; some values change without one: a bulkhead's
//! occupancy drops on every release (which emits nothing, to keep its hot path at one
//! atomic subtraction), and a breaker that never changes state never says which state it is
//! in. These functions read the handles on a timer instead, off the request path.

use std::time::Duration;

use metrics::SharedString;
use palisade_core::event::{
    InstanceName, OccupancyGauge, StateGauge, UsageGauge, WeightGauge, state,
};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::names::{
    BREAKER_STATE, BULKHEAD_IN_FLIGHT, BULKHEAD_QUEUED, CANARY_WEIGHT_PERCENT, STORE_BYTES,
    STORE_CAPACITY_BYTES,
};

/// Shortest sampling period; shorter ones are raised to it.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// A label value for an instance name: free for a `&'static str`, one copy otherwise.
fn label(name: &InstanceName, layer: &'static str) -> SharedString {
    if name.is_empty() {
        return SharedString::const_str(layer);
    }
    match name.as_static() {
        Some(s) => SharedString::const_str(s),
        None => SharedString::from(name.to_arc()),
    }
}

/// Sets the gauges [`palisade_bulkhead_in_flight`](crate::BULKHEAD_IN_FLIGHT)`{bulkhead=name}`
/// and [`palisade_bulkhead_queued`](crate::BULKHEAD_QUEUED)`{bulkhead=name}` from
/// [`OccupancyGauge::in_flight`] and [`OccupancyGauge::queued`] now, then every `every`
/// (at least 1 ms) on a spawned tokio task.
///
/// `gauge` is a bulkhead's handle (`BulkheadHandle` implements [`OccupancyGauge`]) or a
/// closure returning `(in_flight, queued)`. `name` is the `bulkhead` label: pass the
/// bulkhead's own name (`handle.name()`) so these gauges share it with the series
/// [`EventMetrics`](crate::EventMetrics) records from its events (for a keyed bulkhead,
/// watch the few keys worth a series through `handle_for`, each under a name of its own).
/// The gauges are registered with the recorder current at this call, so install the
/// recorder first. The task runs until the returned handle is
/// [aborted](JoinHandle::abort) or the runtime shuts down; dropping the handle lets it run
/// on. Each sample is two atomic loads and two gauge stores; the bulkhead's request path is
/// untouched.
///
/// Panics outside a tokio runtime.
///
/// ```
/// use palisade_bulkhead::BulkheadLayer;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = BulkheadLayer::builder().name("db").max_concurrent(32).build().unwrap();
/// let handle = layer.handle();
/// let watcher = palisade_metrics::watch_bulkhead(handle.name().clone(), handle, Duration::from_secs(1));
/// # watcher.abort();
/// # }
/// ```
pub fn watch_bulkhead(
    name: impl Into<InstanceName>,
    gauge: impl OccupancyGauge,
    every: Duration,
) -> JoinHandle<()> {
    let name = label(&name.into(), "bulkhead");
    let in_flight = metrics::gauge!(BULKHEAD_IN_FLIGHT, "bulkhead" => name.clone());
    let queued = metrics::gauge!(BULKHEAD_QUEUED, "bulkhead" => name);
    sample(every, move || {
        in_flight.set(gauge.in_flight() as f64);
        queued.set(gauge.queued() as f64);
    })
}

/// Sets the gauges [`palisade_store_bytes`](crate::STORE_BYTES)`{layer, instance=name}` and,
/// when the gauge has a bound, [`palisade_store_capacity_bytes`](crate::STORE_CAPACITY_BYTES)
/// from [`UsageGauge`] now, then every `every` (at least 1 ms) on a spawned tokio task.
///
/// `gauge` is a cache's service or store (`palisade_cache::Cache` and `MemoryStore`
/// implement [`UsageGauge`]) or a closure returning `(used, capacity)`; `layer` names the
/// pattern (`"cache"`) and `name` its instance, as in
/// [`palisade_events_total`](crate::EVENTS_TOTAL). Panics outside a tokio runtime.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let watcher = palisade_metrics::watch_usage("cache", "pages", || (512_u64, Some(1024_u64)), Duration::from_secs(1));
/// # watcher.abort();
/// # }
/// ```
pub fn watch_usage(
    layer: &'static str,
    name: impl Into<InstanceName>,
    gauge: impl UsageGauge,
    every: Duration,
) -> JoinHandle<()> {
    let name = label(&name.into(), layer);
    let used = metrics::gauge!(STORE_BYTES, "layer" => layer, "instance" => name.clone());
    let capacity = metrics::gauge!(STORE_CAPACITY_BYTES, "layer" => layer, "instance" => name);
    sample(every, move || {
        used.set(gauge.used() as f64);
        if let Some(c) = gauge.capacity() {
            capacity.set(c as f64);
        }
    })
}

/// Sets the gauge [`palisade_breaker_state`](crate::BREAKER_STATE)`{breaker=name}` from
/// [`StateGauge::state`] now, then every `every` (at least 1 ms) on a spawned tokio task,
/// so the state is exported before the first transition (and after a missed one).
///
/// `gauge` is a breaker's handle (`BreakerHandle` implements [`StateGauge`]); `name` is its
/// [`StateGauge::instance`] (for a closure, which has none: `"breaker"`). The series is the
/// one [`EventMetrics`](crate::EventMetrics) sets on each `state_changed` event, and the two
/// agree (a sample may lag a transition by one period). A finished OPEN wait reads OPEN
/// until the next call moves the breaker to HALF_OPEN. Same registration, task and panic
/// rules as [`watch_bulkhead`].
///
/// ```
/// use palisade_breaker::CircuitBreakerLayer;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = CircuitBreakerLayer::builder().name("payments").build().unwrap();
/// let watcher = palisade_metrics::watch_breaker(layer.handle(), Duration::from_secs(5));
/// # watcher.abort();
/// # }
/// ```
pub fn watch_breaker(gauge: impl StateGauge, every: Duration) -> JoinHandle<()> {
    let state = metrics::gauge!(BREAKER_STATE, "breaker" => label(&gauge.instance(), "breaker"));
    sample(every, move || {
        if let Some(code) = state::code(gauge.state()) {
            state.set(f64::from(code));
        }
    })
}

/// Sets the gauge [`palisade_canary_weight_percent`](crate::CANARY_WEIGHT_PERCENT)
/// `{traffic=name, arm}` of every arm from [`WeightGauge::shares`] now, then every `every`
/// (at least 1 ms) on a spawned tokio task: the weights set by hand through a split's handle
/// too, not only the canary controller's steps.
///
/// `gauge` is a split's handle (`SplitHandle` implements [`WeightGauge`]); the `traffic`
/// label is its [`WeightGauge::instance`] (for a closure: `"traffic"`). Each sample reads
/// the arms' shares (one small allocation, off the request path). Same registration, task
/// and panic rules as [`watch_bulkhead`], except that each arm's gauge is looked up in the
/// recorder at each sample.
pub fn watch_canary(gauge: impl WeightGauge, every: Duration) -> JoinHandle<()> {
    let split = label(&gauge.instance(), "traffic");
    sample(every, move || {
        for (arm, percent) in gauge.shares() {
            metrics::gauge!(CANARY_WEIGHT_PERCENT, "traffic" => split.clone(), "arm" => SharedString::from(arm))
                .set(percent);
        }
    })
}

/// Runs `f` now, then every `every` on a spawned task.
fn sample(every: Duration, f: impl Fn() + Send + 'static) -> JoinHandle<()> {
    f();
    let every = every.max(MIN_PERIOD);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(Instant::now() + every, every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            f();
        }
    })
}
