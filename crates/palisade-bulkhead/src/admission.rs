//! Admission: a concurrency limit with a bounded queue split into priority lanes.
//!
//! The limit and the in-flight and queued counts live in one atomic word: taking a free slot
//! when nobody waits is one compare-and-swap, giving it back one subtraction, with no lock
//! and no allocation. The queue (one `VecDeque` per lane) sits behind a mutex taken only to
//! queue, to hand a freed slot to a waiter, or to change the limit; it is held for a few
//! instructions and never across an `.await`. A request that has to queue allocates its
//! waiter once (an `Arc` holding its state and waker slot); that is the only allocation.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError};
// Under `--cfg loom` the packed word, the waiter state and the locks are loom's, so that
// `tests/loom.rs` explores every interleaving of admission, queueing and release.
#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, AtomicU64, Ordering};
#[cfg(loom)]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use palisade_core::Listeners;

use crate::adaptive::Adaptive;
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
            // Skips a clone when the same task polls again. Always cloning behaves the same
            // (the `false` mutant is equivalent, excluded in `.cargo/mutants.toml`).
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

/// `limit`, `in_flight` and `queued` packed in one word (21 bits each), so the uncontended
/// path is one compare-and-swap to take a slot and one subtraction to give it back.
const BITS: u32 = 21;
const MASK: u64 = (1 << BITS) - 1;
const IN_FLIGHT: u32 = BITS;
const QUEUED: u32 = 2 * BITS;
/// Largest limit or queue length the packed word holds.
pub(crate) const MAX_COUNT: usize = MASK as usize;

#[derive(Debug, Clone, Copy)]
struct State(u64);

impl State {
    fn limit(self) -> usize {
        (self.0 & MASK) as usize
    }
    fn in_flight(self) -> usize {
        ((self.0 >> IN_FLIGHT) & MASK) as usize
    }
    fn queued(self) -> usize {
        ((self.0 >> QUEUED) & MASK) as usize
    }
    fn with_limit(self, limit: usize) -> Self {
        // The low bits are cleared first, so `|` and `^` agree (an equivalent mutant,
        // excluded in `.cargo/mutants.toml`).
        Self((self.0 & !MASK) | (limit.min(MAX_COUNT) as u64))
    }
}

/// The queue (and the adaptive state); locked only when a request must queue, a slot is
/// freed while someone waits, or the limit changes.
#[derive(Debug)]
struct Queue {
    adaptive: Option<Adaptive>,
    lanes: Box<[VecDeque<Arc<Waiter>>]>,
}

/// The shared state of one bulkhead.
#[derive(Debug)]
pub(crate) struct Admission {
    state: AtomicU64,
    queue: Mutex<Queue>,
    adaptive: bool,
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
    /// When the slot was taken; only read in adaptive mode (`None` otherwise, so the fixed
    /// limit never reads the clock).
    started: Option<Instant>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let latency = self.started.map(|t| t.elapsed());
        self.admission.release(latency);
    }
}

impl Admission {
    pub(crate) fn new(
        limit: usize,
        max_queue: usize,
        reserve: Box<[usize]>,
        adaptive: Option<Adaptive>,
        listeners: Listeners<BulkheadEvent>,
    ) -> Self {
        let lanes = (0..reserve.len()).map(|_| VecDeque::new()).collect();
        Self {
            state: AtomicU64::new(State(0).with_limit(limit).0),
            adaptive: adaptive.is_some(),
            queue: Mutex::new(Queue { adaptive, lanes }),
            max_queue: max_queue.min(MAX_COUNT),
            reserve,
            listeners,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn load(&self) -> State {
        State(self.state.load(Ordering::Acquire))
    }

    // (The mutant "cas always fails" makes every CAS loop spin forever: cargo-mutants
    // reports it as a timeout, which is a detection.)
    fn cas(&self, old: State, new: State) -> bool {
        self.state
            .compare_exchange_weak(old.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn lanes(&self) -> usize {
        self.reserve.len()
    }

    fn can_take(&self, s: State, lane: usize) -> bool {
        s.in_flight() + self.reserve[lane] < s.limit()
    }

    fn granted(self: &Arc<Self>, lane: usize, in_flight: usize) -> Acquire {
        self.listeners
            .emit_named(|instance| BulkheadEvent::Admitted {
                instance,
                lane,
                in_flight,
            });
        Acquire::Granted(Permit {
            admission: self.clone(),
            started: self.adaptive.then(Instant::now),
        })
    }

    /// Asks for a slot in `lane` (higher lanes are more important).
    pub(crate) fn acquire(self: &Arc<Self>, lane: usize) -> Acquire {
        let lane = lane.min(self.lanes() - 1);
        // Fast path: nobody waits and a slot is free. (Checking `queued` matters only while a
        // release is between its subtraction and its dispatch; the loom model's
        // `a_newcomer_never_overtakes_a_waiter…` catches its mutants, which the ordinary
        // tests run by cargo-mutants cannot reach: excluded in `.cargo/mutants.toml`.)
        loop {
            let s = self.load();
            if s.queued() != 0 || !self.can_take(s, lane) {
                break;
            }
            if self.cas(s, State(s.0 + (1 << IN_FLIGHT))) {
                return self.granted(lane, s.in_flight() + 1);
            }
        }
        let mut q = self.lock();
        // `queued` only changes under this lock, so it matches the lanes here.
        loop {
            let s = self.load();
            // FIFO: nobody overtakes a waiter of the same or a higher lane. (As above, the
            // `queued` test here matters only mid-release: covered by the loom model.)
            let ahead = s.queued() != 0 && q.lanes[lane..].iter().any(|l| !l.is_empty());
            if !ahead && self.can_take(s, lane) {
                if self.cas(s, State(s.0 + (1 << IN_FLIGHT))) {
                    drop(q);
                    return self.granted(lane, s.in_flight() + 1);
                }
                continue;
            }
            if s.queued() >= self.max_queue {
                return Acquire::Full;
            }
            // Counted as queued in the same step that saw no free slot: a slot freed after
            // this sees the waiter and dispatches (it needs this lock to do so).
            if !self.cas(s, State(s.0 + (1 << QUEUED))) {
                continue;
            }
            let w = Arc::new(Waiter {
                state: AtomicU8::new(WAITING),
                lane,
                waker: Mutex::new(None),
            });
            q.lanes[lane].push_back(w.clone());
            drop(q);
            let depth = s.queued() + 1;
            self.listeners.emit_named(|instance| BulkheadEvent::Queued {
                instance,
                lane,
                depth,
            });
            return Acquire::Queued(w);
        }
    }

    /// Turns a granted waiter into its permit.
    pub(crate) fn take_grant(self: &Arc<Self>, w: &Waiter) -> Permit {
        debug_assert!(w.is_granted());
        w.state.store(GONE, Ordering::Release);
        let in_flight = self.load().in_flight();
        let lane = w.lane;
        self.listeners
            .emit_named(|instance| BulkheadEvent::Admitted {
                instance,
                lane,
                in_flight,
            });
        Permit {
            admission: self.clone(),
            started: self.adaptive.then(Instant::now),
        }
    }

    /// A waiter gave up (timed out or dropped). If it was granted meanwhile, the slot is
    /// passed on; returns whether it had been granted.
    pub(crate) fn abandon(&self, w: &Waiter) -> bool {
        let mut q = self.lock();
        match w.state.swap(GONE, Ordering::AcqRel) {
            GRANTED => {
                self.state.fetch_sub(1 << IN_FLIGHT, Ordering::AcqRel);
                self.dispatch(&mut q);
                true
            }
            WAITING => {
                let lane = &mut q.lanes[w.lane];
                if let Some(i) = lane
                    .iter()
                    .position(|x| std::ptr::eq(Arc::as_ptr(x), std::ptr::from_ref(w)))
                {
                    lane.remove(i);
                    self.state.fetch_sub(1 << QUEUED, Ordering::AcqRel);
                }
                false
            }
            _ => false,
        }
    }

    fn release(&self, latency: Option<Duration>) {
        if let Some(latency) = latency.filter(|_| self.adaptive) {
            let mut q = self.lock();
            let s = self.load();
            let (from, mut to) = (s.limit(), s.limit());
            if let Some(a) = &mut q.adaptive {
                to = a.next(from, s.in_flight(), latency);
            }
            self.update(|s| State(s.with_limit(to).0 - (1 << IN_FLIGHT)));
            self.dispatch(&mut q);
            drop(q);
            if from != to {
                self.listeners
                    .emit_named(|instance| BulkheadEvent::LimitChanged { instance, from, to });
            }
            return;
        }
        let before = State(self.state.fetch_sub(1 << IN_FLIGHT, Ordering::AcqRel));
        if before.queued() != 0 {
            let mut q = self.lock();
            self.dispatch(&mut q);
        }
    }

    fn update(&self, f: impl Fn(State) -> State) {
        let mut s = self.load();
        while let Err(now) =
            self.state
                .compare_exchange_weak(s.0, f(s).0, Ordering::AcqRel, Ordering::Acquire)
        {
            s = State(now);
        }
    }

    /// Hands free slots to the oldest waiter of the highest lane that may take one (under the
    /// queue lock).
    fn dispatch(&self, q: &mut Queue) {
        'outer: loop {
            for lane in (0..q.lanes.len()).rev() {
                if q.lanes[lane].is_empty() {
                    continue;
                }
                loop {
                    let s = self.load();
                    if !self.can_take(s, lane) {
                        // Lower lanes have at least this lane's reserve: none may take it.
                        return;
                    }
                    let next = State(s.0 + (1 << IN_FLIGHT) - (1 << QUEUED));
                    if self.cas(s, next) {
                        break;
                    }
                }
                let w = q.lanes[lane].pop_front().expect("non-empty lane");
                w.grant();
                continue 'outer;
            }
            return;
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.load().in_flight()
    }
    pub(crate) fn queued(&self) -> usize {
        self.load().queued()
    }
    pub(crate) fn limit(&self) -> usize {
        self.load().limit()
    }
    pub(crate) fn set_limit(&self, limit: usize) {
        let limit = limit.min(MAX_COUNT);
        let mut q = self.lock();
        let from = self.limit();
        self.update(|s| s.with_limit(limit));
        self.dispatch(&mut q);
        drop(q);
        if from != limit {
            self.listeners
                .emit_named(|instance| BulkheadEvent::LimitChanged {
                    instance,
                    from,
                    to: limit,
                });
        }
    }
}

#[cfg(test)]
mod tests;
