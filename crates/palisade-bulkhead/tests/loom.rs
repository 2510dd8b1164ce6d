//! `loom` model of the packed-atomic admission: every interleaving of taking a slot,
//! queueing, releasing, abandoning and resizing keeps `in_flight <= limit`, loses no slot
//! and strands no waiter. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p palisade-bulkhead --test loom --release`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use palisade_bulkhead::loom_model::{Model, Outcome};

/// Holds a slot for a moment, checking that no more than `limit` are held at once.
fn hold(inside: &AtomicUsize, limit: usize, permit: palisade_bulkhead::Permit) {
    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
    assert!(n <= limit, "{n} inside a bulkhead of {limit}");
    inside.fetch_sub(1, Ordering::SeqCst);
    drop(permit);
}

/// Finishes a request left queued once the threads are done: a slot must have reached it.
fn settle(m: &Model, inside: &AtomicUsize, limit: usize, o: Outcome) {
    match o {
        Outcome::Granted(p) => hold(inside, limit, p),
        Outcome::Queued(q) => {
            assert!(q.is_granted(), "a waiter stranded with {:?}", m.counts());
            hold(inside, limit, q.take());
        }
        Outcome::Full => {}
    }
}

#[test]
fn two_racing_acquires_and_releases_never_exceed_the_limit_nor_leak() {
    loom::model(|| {
        let m = Model::new(1, 1, 1);
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (m, inside) = (m.clone(), inside.clone());
                thread::spawn(move || match m.acquire(0) {
                    Outcome::Granted(p) => {
                        hold(&inside, 1, p);
                        None
                    }
                    other => Some(other),
                })
            })
            .collect();
        let left: Vec<_> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        for o in left {
            settle(&m, &inside, 1, o);
        }
        assert_eq!(m.counts(), (1, 0, 0));
    });
}

#[test]
fn abandoning_a_wait_while_a_slot_is_released_passes_the_slot_on() {
    loom::model(|| {
        let m = Model::new(1, 2, 1);
        let inside = Arc::new(AtomicUsize::new(0));
        let Outcome::Granted(first) = m.acquire(0) else {
            panic!("free slot")
        };
        let Outcome::Queued(q) = m.acquire(0) else {
            panic!("queued")
        };
        let releaser = thread::spawn(move || drop(first));
        let m2 = m.clone();
        let third = thread::spawn(move || match m2.acquire(0) {
            Outcome::Granted(p) => {
                drop(p);
                None
            }
            other => Some(other),
        });
        // The queued request gives up while the slot is being released.
        q.abandon();
        releaser.join().unwrap();
        if let Some(o) = third.join().unwrap() {
            settle(&m, &inside, 1, o);
        }
        assert_eq!(m.counts(), (1, 0, 0));
    });
}

#[test]
fn raising_the_limit_admits_a_waiter() {
    loom::model(|| {
        let m = Model::new(1, 1, 1);
        let inside = Arc::new(AtomicUsize::new(0));
        let Outcome::Granted(first) = m.acquire(0) else {
            panic!("free slot")
        };
        let m2 = m.clone();
        let waiter = thread::spawn(move || m2.acquire(0));
        let m3 = m.clone();
        let resizer = thread::spawn(move || m3.set_limit(2));
        resizer.join().unwrap();
        let o = waiter.join().unwrap();
        // Both fit under the new limit; the waiter was admitted or granted.
        settle(&m, &inside, 2, o);
        drop(first);
        assert_eq!(m.counts(), (2, 0, 0));
    });
}

#[test]
fn a_newcomer_never_overtakes_a_waiter_while_a_slot_is_released() {
    loom::model(|| {
        let m = Model::new(1, 2, 1);
        let inside = Arc::new(AtomicUsize::new(0));
        let Outcome::Granted(first) = m.acquire(0) else {
            panic!("free slot")
        };
        let Outcome::Queued(waiter) = m.acquire(0) else {
            panic!("queued")
        };
        let releaser = thread::spawn(move || drop(first));
        let m2 = m.clone();
        let newcomer = thread::spawn(move || m2.acquire(0));
        releaser.join().unwrap();
        let late = newcomer.join().unwrap();
        // Whenever it arrived, the newcomer queues behind the waiter (FIFO): the freed slot
        // went to the waiter, on the fast path's check of `queued` or the locked path's.
        let Outcome::Queued(late) = late else {
            panic!("the newcomer overtook the waiter: {:?}", m.counts())
        };
        assert!(waiter.is_granted() && !late.is_granted());
        hold(&inside, 1, waiter.take());
        assert!(late.is_granted());
        hold(&inside, 1, late.take());
        assert_eq!(m.counts(), (1, 0, 0));
    });
}
