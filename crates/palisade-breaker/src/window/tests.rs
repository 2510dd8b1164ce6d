//! Tests of the windows: sequential behaviour and a proptest model, then threads racing
//! on one window (`shared`).

use super::*;

#[test]
fn count_window_keeps_the_last_n() {
    let mut w = Window::new(SlidingWindow::Count(3));
    for (f, s) in [(true, false), (true, true), (false, false), (false, false)] {
        w.record(f, s, Duration::ZERO);
    }
    // The first failure fell out.
    assert_eq!(
        w.totals(),
        Totals {
            calls: 3,
            failed: 1,
            slow: 1
        }
    );
}

#[test]
fn time_window_evicts_old_seconds() {
    let mut w = Window::new(SlidingWindow::Time(2));
    w.record(true, false, Duration::from_millis(100));
    w.record(false, false, Duration::from_millis(1_500));
    assert_eq!(
        w.totals(),
        Totals {
            calls: 2,
            failed: 1,
            slow: 0
        }
    );
    w.advance(Duration::from_millis(2_100)); // second 0 is out of [1, 2]
    assert_eq!(
        w.totals(),
        Totals {
            calls: 1,
            failed: 0,
            slow: 0
        }
    );
    w.advance(Duration::from_secs(10));
    assert_eq!(w.totals(), Totals::default());
}

#[test]
fn an_outcome_recorded_out_of_clock_order_does_not_underflow() {
    // Two calls end at 5.5 s and 4.9 s but take the lock in the other order.
    let mut w = Window::new(SlidingWindow::Time(10));
    w.record(true, false, Duration::from_millis(5_500));
    w.record(false, true, Duration::from_millis(4_900));
    // The later second's bucket is dropped (it is "ahead" of the clock being recorded).
    assert_eq!(
        w.totals(),
        Totals {
            calls: 1,
            failed: 0,
            slow: 1
        }
    );
}

proptest::proptest! {
    // The running totals always equal a recount of the last N outcomes.
    #[test]
    fn count_totals_match_recount(n in 1u32..20, outcomes in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY), 0..100)) {
        let mut w = Window::new(SlidingWindow::Count(n));
        for &(f, s) in &outcomes { w.record(f, s, Duration::ZERO); }
        let tail = &outcomes[outcomes.len().saturating_sub(n as usize)..];
        let want = Totals {
            calls: tail.len() as u32,
            failed: tail.iter().filter(|o| o.0).count() as u32,
            slow: tail.iter().filter(|o| o.1).count() as u32,
        };
        proptest::prop_assert_eq!(w.totals(), want);
    }

    // Same for the time window: totals equal a recount of the calls in the last N seconds.
    #[test]
    fn time_totals_match_recount(n in 1u32..10, calls in proptest::collection::vec((0u64..30_000, proptest::bool::ANY), 0..80)) {
        let mut calls = calls;
        calls.sort_by_key(|c| c.0);
        let mut w = Window::new(SlidingWindow::Time(n));
        for &(ms, f) in &calls { w.record(f, false, Duration::from_millis(ms)); }
        if let Some(&(last, _)) = calls.last() {
            let sec = last / 1000;
            let lo = (sec + 1).saturating_sub(u64::from(n));
            let tail: Vec<_> = calls.iter().filter(|c| c.0 / 1000 >= lo).collect();
            proptest::prop_assert_eq!(w.totals().calls, tail.len() as u32);
            proptest::prop_assert_eq!(w.totals().failed, tail.iter().filter(|c| c.1).count() as u32);
        }
    }
}

/// Tests of the lock-free recording: threads racing on one window leave totals that equal a
/// recount of what the window holds.
mod shared {
    use super::super::*;
    use std::sync::Arc;

    /// Four threads record `per_thread` outcomes each (thread `i` fails every `i + 2`th
    /// call and is slow every `i + 3`th), `at(thread, call)` giving the time.
    fn race(w: &Arc<Window>, per_thread: u32, at: fn(u32, u32) -> Duration) -> Totals {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let mut mine = Totals::default();
                    for c in 0..per_thread {
                        let (f, s) = (c % (i + 2) == 0, c % (i + 3) == 0);
                        w.add(f, s, at(i, c));
                        mine.add(f, s);
                    }
                    mine
                })
            })
            .collect();
        let mut all = Totals::default();
        for t in threads {
            let mine = t.join().unwrap();
            all.calls += mine.calls;
            all.failed += mine.failed;
            all.slow += mine.slow;
        }
        all
    }

    #[test]
    fn racing_outcomes_all_count_in_a_window_large_enough() {
        let w = Arc::new(Window::new(SlidingWindow::Count(10_000)));
        let all = race(&w, 2_500, |_, _| Duration::ZERO);
        assert_eq!(all.calls, 10_000);
        assert_eq!(w.totals(), all);
        assert_eq!(w.recount(), all);
    }

    #[test]
    fn racing_outcomes_in_a_small_count_window_match_its_slots() {
        let w = Arc::new(Window::new(SlidingWindow::Count(7)));
        race(&w, 20_000, |_, _| Duration::ZERO);
        assert_eq!(w.totals().calls, 7);
        assert_eq!(w.totals(), w.recount());
    }

    #[test]
    fn racing_outcomes_in_a_time_window_match_its_buckets() {
        let w = Arc::new(Window::new(SlidingWindow::Time(3)));
        // Each thread walks through 10 seconds; the window keeps the last 3 it saw.
        race(&w, 20_000, |_, c| Duration::from_millis(u64::from(c) / 2));
        assert_eq!(w.totals(), w.recount());
        assert!(w.totals().calls > 0);
    }

    #[test]
    fn clearing_while_recording_leaves_consistent_totals() {
        for kind in [SlidingWindow::Count(50), SlidingWindow::Time(2)] {
            let w = Arc::new(Window::new(kind));
            let clearer = {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        w.clear();
                        std::thread::yield_now();
                    }
                })
            };
            race(&w, 5_000, |_, c| Duration::from_millis(u64::from(c)));
            clearer.join().unwrap();
            assert_eq!(w.totals(), w.recount(), "{kind:?}");
            w.clear();
            assert_eq!(w.totals(), Totals::default(), "{kind:?}");
            assert_eq!(w.recount(), Totals::default(), "{kind:?}");
        }
    }

    #[test]
    fn an_outcome_like_the_one_it_replaces_changes_nothing() {
        let w = Window::new(SlidingWindow::Count(2));
        assert!(w.add(false, false, Duration::ZERO), "first fill");
        assert!(w.add(false, false, Duration::ZERO), "second fill");
        assert!(!w.add(false, false, Duration::ZERO), "success over success");
        assert!(w.add(true, false, Duration::ZERO), "failure over success");
        assert!(!w.add(false, false, Duration::ZERO), "success over success");
        assert!(w.add(false, true, Duration::ZERO), "slow over failure");
        assert_eq!(
            w.totals(),
            Totals {
                calls: 2,
                failed: 0,
                slow: 1
            }
        );
        // A time window always changes, and reports dropped buckets.
        let t = Window::new(SlidingWindow::Time(1));
        assert!(t.add(false, false, Duration::ZERO));
        assert!(!t.advance_shared(Duration::from_millis(999)));
        assert!(t.advance_shared(Duration::from_secs(1)));
        assert_eq!(t.totals(), Totals::default());
    }

    #[test]
    fn a_racing_recorders_leftover_in_the_rotated_slot_counts_as_dropped() {
        // A recorder that passed `advance_shared` just before its bucket was emptied adds
        // to a bucket holding no second; the next rotation onto that slot drains it, and that
        // change to the totals must be reported so that the "may trip" check runs. The
        // leftover may be flags without their call yet (the call is added last).
        for (calls, failed, slow) in [(1, 0, 0), (1, 1, 0), (1, 1, 1), (0, 1, 0), (0, 1, 1)] {
            let w = Window::new(SlidingWindow::Time(2));
            let Window::Time {
                buckets, totals, ..
            } = &w
            else {
                unreachable!()
            };
            buckets[0].calls.store(calls, Relaxed);
            buckets[0].failed.store(failed, Relaxed);
            buckets[0].slow.store(slow, Relaxed);
            totals.add(calls, failed, slow);
            assert!(
                w.advance_shared(Duration::from_millis(100)),
                "{calls} {failed} {slow}"
            );
            assert_eq!(w.totals(), Totals::default());
            assert_eq!(w.recount(), Totals::default());
        }
        // Moving to a new second with nothing out of the window and nothing left over drops
        // nothing.
        let w = Window::new(SlidingWindow::Time(2));
        assert!(w.add(true, false, Duration::from_millis(100)));
        assert!(!w.advance_shared(Duration::from_millis(1_200)));
        assert_eq!(w.totals().calls, 1);
    }

    #[test]
    fn only_a_time_window_needs_the_time_of_an_outcome() {
        // The breaker reads the clock for an outcome only when this says so.
        assert!(!Window::new(SlidingWindow::Count(3)).is_timed());
        assert!(Window::new(SlidingWindow::Time(3)).is_timed());
    }

    #[test]
    fn counters_that_raced_below_zero_read_as_zero() {
        assert_eq!(clamp(0u64.wrapping_sub(1)), 0);
        assert_eq!(clamp(5), 5);
        assert_eq!(clamp(u64::from(u32::MAX) + 1), u32::MAX);
    }

    proptest::proptest! {
        #[test]
        fn fastmod_is_remainder(x in proptest::num::u32::ANY, d in 1u32..=10_000) {
            let m = (u64::MAX / u64::from(d)).wrapping_add(1);
            proptest::prop_assert_eq!(fastmod(x, m, d), (x % d) as usize);
        }
    }
}
