//! Live gauges: values a listener samples from a layer's handle instead of learning them
//! from events (a bulkhead's release emits nothing; a breaker that never changes state never
//! says which state it is in).
//!
//! Each pattern's handle implements the trait that fits it (`BulkheadHandle`:
//! [`OccupancyGauge`], `BreakerHandle`: [`StateGauge`], `SplitHandle`: [`WeightGauge`], a
//! cache's `Cache`/`MemoryStore`: [`UsageGauge`]), and
//! a closure does too, as `palisade-health`'s checks take closures, so a metrics exporter
//! can sample any implementation without depending on the pattern crate:
//!
//! ```
//! use palisade_core::event::{OccupancyGauge, StateGauge, state};
//!
//! let pool = || (3_usize, 1_usize); // (in flight, queued)
//! assert_eq!((pool.in_flight(), pool.queued()), (3, 1));
//! let store = || (512_u64, Some(1024_u64)); // (bytes in use, byte bound)
//! assert_eq!(palisade_core::event::UsageGauge::used(&store), 512);
//! let breaker = || state::OPEN;
//! assert_eq!(breaker.state(), "open");
//! assert_eq!(state::code(breaker.state()), Some(1));
//! ```

use std::sync::Arc;

use super::InstanceName;

/// The occupancy of a concurrency limiter (bulkhead, pool), read now.
///
/// Implemented by closures returning `(in_flight, queued)`.
pub trait OccupancyGauge: Send + Sync + 'static {
    /// Calls holding a slot now.
    fn in_flight(&self) -> usize;
    /// Requests waiting for a slot now.
    fn queued(&self) -> usize;
    /// The instance's name (empty if unnamed, as for a closure).
    fn instance(&self) -> InstanceName {
        InstanceName::default()
    }
}

impl<F> OccupancyGauge for F
where
    F: Fn() -> (usize, usize) + Send + Sync + 'static,
{
    fn in_flight(&self) -> usize {
        self().0
    }
    fn queued(&self) -> usize {
        self().1
    }
}

/// The state of a circuit breaker, read now, as one of the [`state`] names.
///
/// Implemented by closures returning the state name.
pub trait StateGauge: Send + Sync + 'static {
    /// The state's name ([`state::CLOSED`], [`state::OPEN`], …).
    fn state(&self) -> &'static str;
    /// The instance's name (empty if unnamed, as for a closure).
    fn instance(&self) -> InstanceName {
        InstanceName::default()
    }
}

impl<F> StateGauge for F
where
    F: Fn() -> &'static str + Send + Sync + 'static,
{
    fn state(&self) -> &'static str {
        self()
    }
}

/// The traffic shares of a splitter (canary weights), read now.
///
/// Implemented by closures returning `(target, percent)` pairs.
pub trait WeightGauge: Send + Sync + 'static {
    /// Each target's share of new traffic in percent (0–100), in a stable order.
    fn shares(&self) -> Vec<(Arc<str>, f64)>;
    /// The instance's name (empty if unnamed, as for a closure).
    fn instance(&self) -> InstanceName {
        InstanceName::default()
    }
}

impl<F> WeightGauge for F
where
    F: Fn() -> Vec<(Arc<str>, f64)> + Send + Sync + 'static,
{
    fn shares(&self) -> Vec<(Arc<str>, f64)> {
        self()
    }
}

/// The fill of a bounded store (a cache's bytes in use against its byte bound), read now.
///
/// Implemented by closures returning `(used, capacity)`.
pub trait UsageGauge: Send + Sync + 'static {
    /// Units (bytes) held now.
    fn used(&self) -> u64;
    /// The bound, if any.
    fn capacity(&self) -> Option<u64> {
        None
    }
    /// The instance's name (empty if unnamed, as for a closure).
    fn instance(&self) -> InstanceName {
        InstanceName::default()
    }
}

impl<F> UsageGauge for F
where
    F: Fn() -> (u64, Option<u64>) + Send + Sync + 'static,
{
    fn used(&self) -> u64 {
        self().0
    }
    fn capacity(&self) -> Option<u64> {
        self().1
    }
}

/// The circuit-breaker state names shared by events ([`Event::state`](super::Event::state)),
/// [`StateGauge`] and their listeners, with the gauge encoding metrics export.
pub mod state {
    /// Calls pass; outcomes are recorded.
    pub const CLOSED: &str = "closed";
    /// Calls are rejected until the wait is over.
    pub const OPEN: &str = "open";
    /// A few probe calls decide between closed and open.
    pub const HALF_OPEN: &str = "half_open";
    /// Always permits, records nothing.
    pub const DISABLED: &str = "disabled";
    /// Always rejects.
    pub const FORCED_OPEN: &str = "forced_open";
    /// Permits and records like closed, never opens.
    pub const METRICS_ONLY: &str = "metrics_only";

    /// Every state name, in gauge-code order.
    pub const ALL: [&str; 6] = [CLOSED, OPEN, HALF_OPEN, DISABLED, FORCED_OPEN, METRICS_ONLY];

    /// The gauge value of a state: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced
    /// open, 5 metrics only; `None` for a name outside [`ALL`].
    pub fn code(state: &str) -> Option<u8> {
        ALL.iter().position(|s| *s == state).map(|i| i as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_gauges_and_state_codes_are_stable() {
        let shares = || vec![(Arc::<str>::from("canary"), 20.0)];
        assert!((shares.shares()[0].1 - 20.0).abs() < f64::EPSILON);
        assert_eq!(WeightGauge::instance(&shares), "");
        assert_eq!(state::code("closed"), Some(0));
        assert_eq!(state::code("metrics_only"), Some(5));
        assert_eq!(state::code("ajar"), None);
    }
}
