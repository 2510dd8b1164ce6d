//! Admission: a concurrency limit with a bounded queue split into priority lanes.
//!
//! One mutex guards the counters and the queue; it is held for a few instructions and
//! never across an `.await`. A request that finds a free slot takes it without allocating;
//! one that has to queue allocates its waiter once (an `Arc` with its waker slot).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use palisade_core::Listeners;

use crate::events::BulkheadEvent;

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const GONE: u8 = 2;

/// A queued request waiting for a slot.
#[derive(Debug)]
pub(crate) struct Waiter {
    state: AtomicU8,
    lane: usize,
    waker: Mutex<Option<Waker>>,
}

impl Waiter {
    pub(crate) fn is_granted(&self) -> bool {
        self.state.load(Ordering::Acquire) == GRANTED
    }
    pub(crate) fn register(&self, waker: &Waker) {
        let mut w = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match &*w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }
    fn grant(&self) {
        self.state.store(GRANTED, Ordering::Release);
        if let Some(w) = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            w.wake();
        }
    }
}

#[derive(Debug)]
struct Counters {
    limit: usize,
    in_flight: usize,
    queued: usize,
    lanes: Box<[VecDeque<Arc<Waiter>>]>,
}

/// The shared state of one bulkhead.
#[derive(Debug)]
pub(crate) struct Admission {
    counters: Mutex<Counters>,
    max_queue: usize,
    /// `reserve[lane]`: slots a request of `lane` may not take (kept for higher lanes).
    reserve: Box<[usize]>,
    pub(crate) listeners: Listeners<BulkheadEvent>,
}

/// What a request gets.
#[derive(Debug)]
pub(crate) enum Acquire {
    Granted(Permit),
    Queued(Arc<Waiter>),
    Full,
}

/// A held slot; dropping it frees the slot and admits the next waiter.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release();
    }
}

impl Admission {
    pub(crate) fn new(
        limit: usize,
        max_queue: usize,
        reserve: Box<[usize]>,
        listeners: Listeners<BulkheadEvent>,
    ) -> Self {
        let lanes = (0..reserve.len()).map(|_| VecDeque::new()).collect();
        Self {
            counters: Mutex::new(Counters {
                limit,
                in_flight: 0,
                queued: 0,
                lanes,
            }),
            max_queue,
            reserve,
            listeners,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lanes(&self) -> usize {
        self.reserve.len()
    }

    fn can_take(&self, c: &Counters, lane: usize) -> bool {
        c.in_flight + self.reserve[lane] < c.limit
    }

    /// Asks for a slot in `lane` (higher lanes are more important).
    pub(crate) fn acquire(self: &Arc<Self>, lane: usize) -> Acquire {
        let lane = lane.min(self.lanes() - 1);
        let mut c = self.lock();
        // FIFO: nobody overtakes a waiter of the same or a higher lane.
        let ahead = c.lanes[lane..].iter().any(|l| !l.is_empty());
        if !ahead && self.can_take(&c, lane) {
            c.in_flight += 1;
            return Acquire::Granted(Permit {
                admission: self.clone(),
            });
        }
        if c.queued < self.max_queue {
            let w = Arc::new(Waiter {
                state: AtomicU8::new(WAITING),
                lane,
                waker: Mutex::new(None),
            });
            c.lanes[lane].push_back(w.clone());
            c.queued += 1;
            let depth = c.queued;
            drop(c);
            self.listeners
                .emit_with(|| BulkheadEvent::Queued { lane, depth });
            return Acquire::Queued(w);
        }
        Acquire::Full
    }

    /// Turns a granted waiter into its permit.
    pub(crate) fn take_grant(self: &Arc<Self>, w: &Waiter) -> Permit {
        debug_assert!(w.is_granted());
        w.state.store(GONE, Ordering::Release);
        Permit {
            admission: self.clone(),
        }
    }

    /// A waiter gave up (timed out or dropped). If it was granted meanwhile, the slot is
    /// passed on; returns whether it had been granted.
    pub(crate) fn abandon(&self, w: &Waiter) -> bool {
        let mut c = self.lock();
        match w.state.swap(GONE, Ordering::AcqRel) {
            GRANTED => {
                c.in_flight -= 1;
                self.dispatch(&mut c);
                true
            }
            WAITING => {
                let lane = &mut c.lanes[w.lane];
                if let Some(i) = lane
                    .iter()
                    .position(|x| std::ptr::eq(Arc::as_ptr(x), std::ptr::from_ref(w)))
                {
                    lane.remove(i);
                    c.queued -= 1;
                }
                false
            }
            _ => false,
        }
    }

    fn release(&self) {
        let mut c = self.lock();
        c.in_flight -= 1;
        self.dispatch(&mut c);
    }

    /// Hands free slots to the oldest waiter of the highest lane that may take one.
    fn dispatch(&self, c: &mut Counters) {
        'outer: loop {
            for lane in (0..c.lanes.len()).rev() {
                if c.lanes[lane].is_empty() {
                    continue;
                }
                if !self.can_take(c, lane) {
                    // Lower lanes have at least this lane's reserve: none may take it either.
                    return;
                }
                let w = c.lanes[lane].pop_front().expect("non-empty lane");
                c.queued -= 1;
                c.in_flight += 1;
                w.grant();
                continue 'outer;
            }
            return;
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }
    pub(crate) fn queued(&self) -> usize {
        self.lock().queued
    }
    pub(crate) fn limit(&self) -> usize {
        self.lock().limit
    }
    pub(crate) fn set_limit(&self, limit: usize) {
        let mut c = self.lock();
        let from = c.limit;
        c.limit = limit;
        self.dispatch(&mut c);
        drop(c);
        if from != limit {
            self.listeners
                .emit_with(|| BulkheadEvent::LimitChanged { from, to: limit });
        }
    }
}
