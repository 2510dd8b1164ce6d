//! [`BulkheadHandle`]: read and resize a bulkhead.

use std::sync::Arc;

use palisade_core::event::{InstanceName, OccupancyGauge};

use crate::admission::Admission;

/// A cloneable handle on one bulkhead: in-flight, queued and limit, for health checks and
/// admin endpoints.
#[derive(Debug, Clone)]
pub struct BulkheadHandle {
    pub(crate) admission: Arc<Admission>,
}

impl BulkheadHandle {
    /// The bulkhead's name (its builder's `name`, or `"bulkhead"`).
    pub fn name(&self) -> &InstanceName {
        self.admission.listeners.instance()
    }
    /// Calls inside now (holding a slot).
    pub fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }
    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.admission.queued()
    }
    /// The concurrency limit.
    pub fn limit(&self) -> usize {
        self.admission.limit()
    }
    /// Changes the limit at run time (1 to 2,097,151); raising it admits waiters at once. With
    /// an adaptive limit, the algorithm carries on from the new value.
    pub fn set_limit(&self, limit: usize) {
        self.admission.set_limit(limit.max(1));
    }
}

/// Live occupancy for metrics exporters (`palisade-metrics`'s `watch_bulkhead`).
impl OccupancyGauge for BulkheadHandle {
    fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }
    fn queued(&self) -> usize {
        self.admission.queued()
    }
    fn instance(&self) -> InstanceName {
        self.name().clone()
    }
}
