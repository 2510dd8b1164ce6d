//! Live gauges sampled from layer handles: [`watch_bulkhead`] and [`watch_breaker`].
//!
//! Events tell when something changes; some values change without one: a bulkhead's
//! occupancy drops on every release (which emits nothing, to keep its hot path at one
//! atomic subtraction), and a breaker that never changes state never says which state it is
//! in. These functions read the handles on a timer instead, off the request path.

use std::time::Duration;

use palisade_breaker::BreakerHandle;
use palisade_bulkhead::BulkheadHandle;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::names::{BREAKER_STATE, BULKHEAD_IN_FLIGHT, BULKHEAD_QUEUED};

/// Shortest sampling period; shorter ones are raised to it.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Sets the gauges [`palisade_bulkhead_in_flight`](crate::BULKHEAD_IN_FLIGHT)`{bulkhead=name}`
/// and [`palisade_bulkhead_queued`](crate::BULKHEAD_QUEUED)`{bulkhead=name}` from
/// [`BulkheadHandle::in_flight`] and [`BulkheadHandle::queued`] now, then every `every`
/// (at least 1 ms) on a spawned tokio task.
///
/// `name` is the `bulkhead` label: a name fixed in code, one per bulkhead (for a keyed
/// bulkhead, watch the few keys worth a series through `handle_for`). The gauges are
/// registered with the recorder current at this call, so install the recorder first. The
/// task runs until the returned handle is [aborted](JoinHandle::abort) or the runtime shuts
/// down; dropping the handle lets it run on. Each sample is two atomic loads and two gauge
/// stores; the bulkhead's request path is untouched.
///
/// Panics outside a tokio runtime.
///
/// ```
/// use palisade_bulkhead::BulkheadLayer;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = BulkheadLayer::builder().max_concurrent(32).build().unwrap();
/// let watcher = palisade_metrics::watch_bulkhead("db", layer.handle(), Duration::from_secs(1));
/// # watcher.abort();
/// # }
/// ```
pub fn watch_bulkhead(
    name: &'static str,
    handle: BulkheadHandle,
    every: Duration,
) -> JoinHandle<()> {
    let in_flight = metrics::gauge!(BULKHEAD_IN_FLIGHT, "bulkhead" => name);
    let queued = metrics::gauge!(BULKHEAD_QUEUED, "bulkhead" => name);
    sample(every, move || {
        in_flight.set(handle.in_flight() as f64);
        queued.set(handle.queued() as f64);
    })
}

/// Sets the gauge [`palisade_breaker_state`](crate::BREAKER_STATE)`{breaker=name}` from
/// [`BreakerHandle::state`] now, then every `every` (at least 1 ms) on a spawned tokio task,
/// so the state is exported before the first transition (and after a missed one).
///
/// `name` is the breaker's own ([`BreakerHandle::name`]): the series is the one
/// [`EventMetrics`](crate::EventMetrics) sets on each `StateChanged`, and the two agree
/// (a sample may lag a transition by one period). A finished OPEN wait reads OPEN until the
/// next call moves the breaker to HALF_OPEN, as [`BreakerHandle::state`] says. Same
/// registration, task and panic rules as [`watch_bulkhead`].
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
pub fn watch_breaker(handle: BreakerHandle, every: Duration) -> JoinHandle<()> {
    let state = metrics::gauge!(BREAKER_STATE, "breaker" => handle.name());
    sample(every, move || state.set(f64::from(handle.state() as u8)))
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
