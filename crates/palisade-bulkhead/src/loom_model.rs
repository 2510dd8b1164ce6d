//! The admission state machine, opened up for the `loom` model in `tests/loom.rs`. Only
//! built with `RUSTFLAGS="--cfg loom"`; not part of the API.

use std::sync::Arc;

use palisade_core::Listeners;

use crate::admission::{Acquire, Admission, Waiter};
use crate::{Permit, events::BulkheadEvent};

/// One bulkhead's admission (packed atomic word plus queue), with `lanes` lanes and no
/// reserves.
#[derive(Debug, Clone)]
pub struct Model(Arc<Admission>);

/// The outcome of [`Model::acquire`].
#[derive(Debug)]
pub enum Outcome {
    /// A slot, freed on drop.
    Granted(Permit),
    /// Waiting for a slot.
    Queued(Queued),
    /// Refused: the queue is full.
    Full,
}

/// A queued request.
#[derive(Debug)]
pub struct Queued {
    admission: Arc<Admission>,
    waiter: Arc<Waiter>,
}

impl Queued {
    /// Whether a released slot was handed to it.
    pub fn is_granted(&self) -> bool {
        self.waiter.is_granted()
    }
    /// Turns a granted wait into its permit.
    pub fn take(self) -> Permit {
        self.admission.take_grant(&self.waiter)
    }
    /// Gives up (timeout or drop); returns whether it had been granted meanwhile.
    pub fn abandon(self) -> bool {
        self.admission.abandon(&self.waiter)
    }
}

impl Model {
    /// A bulkhead of `limit` slots and `max_queue` waiting places.
    pub fn new(limit: usize, max_queue: usize, lanes: usize) -> Self {
        let listeners: Listeners<BulkheadEvent> = Listeners::new();
        Self(Arc::new(Admission::new(
            limit,
            max_queue,
            vec![0; lanes].into(),
            None,
            listeners,
        )))
    }
    /// Asks for a slot in `lane`.
    pub fn acquire(&self, lane: usize) -> Outcome {
        match self.0.acquire(lane) {
            Acquire::Granted(p) => Outcome::Granted(p),
            Acquire::Queued(waiter) => Outcome::Queued(Queued {
                admission: self.0.clone(),
                waiter,
            }),
            Acquire::Full => Outcome::Full,
        }
    }
    /// Changes the limit.
    pub fn set_limit(&self, limit: usize) {
        self.0.set_limit(limit);
    }
    /// `(limit, in_flight, queued)` from the packed word.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.0.limit(), self.0.in_flight(), self.0.queued())
    }
}
