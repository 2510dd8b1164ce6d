//! `loom` model of the breaker's lock-free outcome window: every interleaving of threads
//! recording outcomes (success, failure, slow), rotating a time window and clearing it leaves
//! running totals equal to what the ring or buckets hold, never below zero, and the "may trip"
//! check (the only reason a CLOSED breaker takes its lock on an outcome) never misses a trip
//! that the final totals show. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p palisade-breaker --test loom --release`.
#![cfg(loom)]

use std::time::Duration;

use loom::thread;
use palisade_breaker::loom_model::Model;
use palisade_breaker::{BreakerConfig, SlidingWindow, Totals};

/// A config with `window`, `minimum_calls` and a failure threshold of `failure_rate`
/// (the slow-call threshold at 100 %).
fn model(window: SlidingWindow, minimum_calls: u32, failure_rate: f32) -> Model {
    let mut config = BreakerConfig::default();
    config.window = window;
    config.minimum_calls = minimum_calls;
    config.failure_rate_threshold = failure_rate;
    config.slow_call_rate_threshold = 100.0;
    Model::new(&config)
}

/// An outcome: `(failed, slow, elapsed in ms)`.
type Outcome = (bool, bool, u64);

/// What one more thread does while the outcomes are recorded.
#[derive(Clone, Copy)]
enum Other {
    Nothing,
    /// Empties the window, as a transition does.
    Clear,
    /// An ignored outcome at this many milliseconds (moves a time window on).
    Ignore(u64),
}

/// Records `outcomes` one per thread while `other` runs on another, joins them and checks the
/// window at rest: totals equal the recount and are not negative. Returns the final totals
/// and whether any thread would have taken the lock to open the breaker.
fn race(m: &Model, outcomes: &[Outcome], other: Other) -> (Totals, bool) {
    let threads: Vec<_> = outcomes
        .iter()
        .map(|&(failed, slow, ms)| {
            let m = m.clone();
            thread::spawn(move || m.record(failed, slow, Duration::from_millis(ms)))
        })
        .collect();
    let other = {
        let m = m.clone();
        match other {
            Other::Nothing => None,
            Other::Clear => Some(thread::spawn(move || {
                m.clear();
                false
            })),
            Other::Ignore(ms) => Some(thread::spawn(move || m.ignore(Duration::from_millis(ms)))),
        }
    };
    let mut locked = false;
    for t in threads {
        locked |= t.join().unwrap();
    }
    if let Some(t) = other {
        locked |= t.join().unwrap();
    }
    let (calls, failed, slow) = m.raw_totals();
    assert!(
        calls >= 0 && failed >= 0 && slow >= 0,
        "a counter below zero at rest: {:?}",
        m.raw_totals()
    );
    let totals = m.totals();
    assert_eq!(
        totals,
        m.recount(),
        "totals differ from the window's contents"
    );
    (totals, locked)
}

/// No trip missed: if the final totals open the breaker, some racing outcome saw it.
fn assert_no_missed_trip(m: &Model, totals: Totals, locked: bool) {
    assert!(
        !m.trips(totals) || locked,
        "the final totals {totals:?} trip, but no outcome took the lock"
    );
}

#[test]
fn two_failures_in_an_empty_count_window_are_both_counted_and_trip() {
    // Each failure adds to `calls` and to `failed`; the breaker must open with both.
    loom::model(|| {
        let m = model(SlidingWindow::Count(2), 2, 100.0);
        let (totals, locked) = race(&m, &[(true, false, 0), (true, false, 0)], Other::Nothing);
        assert_eq!(
            totals,
            Totals {
                calls: 2,
                failed: 2,
                slow: 0
            }
        );
        assert!(locked, "two failures of two calls must take the lock");
    });
}

#[test]
fn a_failure_and_a_slow_success_replacing_full_slots_never_miss_a_trip() {
    // The ring is full of successes; the two outcomes change different counters.
    loom::model(|| {
        let m = model(SlidingWindow::Count(2), 2, 50.0);
        m.record(false, false, Duration::ZERO);
        m.record(false, false, Duration::ZERO);
        let (totals, locked) = race(&m, &[(true, false, 0), (false, true, 0)], Other::Nothing);
        assert_eq!(
            totals,
            Totals {
                calls: 2,
                failed: 1,
                slow: 1
            }
        );
        assert_no_missed_trip(&m, totals, locked);
        assert!(locked);
    });
}

#[test]
fn three_outcomes_racing_for_two_slots_keep_two_and_never_miss_a_trip() {
    // One of the three is evicted by the ring's capacity: which one depends on the order in
    // which the two writers of the shared slot swap it.
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let m = model(SlidingWindow::Count(2), 2, 100.0);
        let (totals, locked) = race(
            &m,
            &[(true, false, 0), (false, true, 0), (true, true, 0)],
            Other::Nothing,
        );
        assert_eq!(totals.calls, 2, "{totals:?}");
        assert!((1..=2).contains(&totals.failed), "{totals:?}");
        assert!((1..=2).contains(&totals.slow), "{totals:?}");
        assert_no_missed_trip(&m, totals, locked);
    });
}

#[test]
fn clearing_a_count_window_while_outcomes_are_recorded_keeps_totals_consistent() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let m = model(SlidingWindow::Count(2), 1, 100.0);
        let (totals, _) = race(&m, &[(true, false, 0), (false, true, 0)], Other::Clear);
        // Each outcome is either cleared or counted, never half of each.
        assert!(totals.calls <= 2, "{totals:?}");
        m.clear();
        assert_eq!(m.totals(), Totals::default());
        assert_eq!(m.raw_totals(), (0, 0, 0));
    });
}

#[test]
fn two_failures_in_one_second_of_a_time_window_are_both_counted_and_trip() {
    loom::model(|| {
        let m = model(SlidingWindow::Time(2), 2, 100.0);
        let (totals, locked) = race(
            &m,
            &[(true, false, 100), (true, false, 200)],
            Other::Nothing,
        );
        assert_eq!(
            totals,
            Totals {
                calls: 2,
                failed: 2,
                slow: 0
            }
        );
        assert!(locked, "two failures of two calls must take the lock");
    });
}

#[test]
fn an_outcome_racing_a_rotation_never_leaves_a_flag_without_its_call() {
    // Seconds 0 and 2 share a bucket of a two-second window: whichever rotates last drops
    // the other second, unless its outcome lands after the rotation (then it may lose its
    // flags, never keep them without its call: before the fix, `failed` could exceed `calls`).
    loom::model(|| {
        let m = model(SlidingWindow::Time(2), 1, 100.0);
        let (totals, locked) = race(
            &m,
            &[(true, false, 500), (true, true, 2_500)],
            Other::Nothing,
        );
        assert!((1..=2).contains(&totals.calls), "{totals:?}");
        assert!(totals.failed <= totals.calls, "{totals:?}");
        assert!(totals.slow <= totals.calls, "{totals:?}");
        assert_no_missed_trip(&m, totals, locked);
    });
}

#[test]
fn clearing_a_time_window_while_outcomes_are_recorded_keeps_totals_consistent() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let m = model(SlidingWindow::Time(2), 1, 100.0);
        let (totals, _) = race(
            &m,
            &[(true, false, 500), (false, true, 1_500)],
            Other::Clear,
        );
        assert!(totals.calls <= 2, "{totals:?}");
        assert!(totals.failed <= totals.calls, "{totals:?}");
        assert!(totals.slow <= totals.calls, "{totals:?}");
        m.clear();
        assert_eq!(m.totals(), Totals::default());
        assert_eq!(m.raw_totals(), (0, 0, 0));
    });
}

#[test]
fn an_ignored_outcome_rotating_a_time_window_keeps_totals_consistent() {
    // An ignored outcome only moves the window on; it races a failure into the same bucket.
    loom::model(|| {
        let m = model(SlidingWindow::Time(1), 1, 100.0);
        let (totals, locked) = race(&m, &[(true, false, 300)], Other::Ignore(1_200));
        assert!(totals.calls <= 1, "{totals:?}");
        assert_no_missed_trip(&m, totals, locked);
    });
}
