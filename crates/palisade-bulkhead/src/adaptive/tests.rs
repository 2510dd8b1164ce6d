use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn aimd_stays_in_range_and_moves_the_right_way(
        min in 1usize..50, span in 0usize..200, limit in 0usize..400,
        in_flight in 0usize..400, latency_ms in 0u64..400, backoff in 0.05f64..0.95,
    ) {
        let a = Aimd::new(min, min + span, Duration::from_millis(200)).backoff(backoff);
        let next = a.next(limit, in_flight, Duration::from_millis(latency_ms));
        prop_assert!(next >= a.min && next <= a.max);
        let clamped = limit.clamp(a.min, a.max);
        if latency_ms > 200 {
            prop_assert!(next <= clamped);
        } else {
            prop_assert!(next >= clamped && next <= clamped + 1);
        }
    }
}

proptest! {
    #[test]
    fn gradient_stays_in_range(
        min in 1usize..20, span in 0usize..100, start in 1usize..200,
        samples in proptest::collection::vec((0u64..1_000, 0usize..200), 1..100),
    ) {
        let mut g = Adaptive::gradient(Gradient::new(min, min + span).long_window(10));
        let mut limit = start.clamp(min, min + span);
        for (ms, in_flight) in samples {
            limit = g.next(limit, in_flight, Duration::from_millis(ms));
            prop_assert!(limit >= min && limit <= min + span);
        }
    }
}

#[test]
fn aimd_boundaries() {
    let a = Aimd::new(1, 100, Duration::from_millis(200));
    // Exactly the threshold is not overload ("slower than").
    assert_eq!(a.next(10, 10, Duration::from_millis(200)), 11);
    assert_eq!(a.next(10, 10, Duration::from_millis(201)), 9);
    // Growth needs at least half the limit in use: 1 of 3 is not.
    assert_eq!(a.next(3, 1, Duration::ZERO), 3);
    assert_eq!(a.next(4, 2, Duration::ZERO), 5);
}

#[test]
fn gradient_average_follows_a_short_window_at_once() {
    // With a window of one sample the average is the last latency: a jump in latency
    // is not seen as a rise against the average, so a busy limit keeps growing.
    let mut g = Adaptive::gradient(Gradient::new(1, 1_000).long_window(1));
    let mut limit = 10;
    for ms in [10, 100, 100, 100, 1_000, 1_000] {
        let next = g.next(limit, limit, Duration::from_millis(ms));
        assert!(next >= limit, "{limit} → {next} at {ms} ms");
        limit = next;
    }
    assert!(limit > 10);
}

#[test]
fn gradient_average_follows_a_latency_drop_quickly() {
    // 50 calls at 100 ms, 20 at 10 ms, then 60 ms: the long-term average fell with the
    // drop (faster than its 100-sample window alone would let it), so 60 ms reads as a
    // rise and the limit shrinks.
    let mut g = Adaptive::gradient(Gradient::new(1, 1_000).long_window(100));
    let mut limit = 100;
    for ms in std::iter::repeat_n(100, 50).chain(std::iter::repeat_n(10, 20)) {
        limit = g.next(limit, limit, Duration::from_millis(ms));
    }
    let before = limit;
    let after = g.next(limit, limit, Duration::from_millis(60));
    assert!(after < before, "{before} → {after}");
}

#[test]
fn gradient_learns_nothing_while_application_limited() {
    let ms = Duration::from_millis;
    // Half the estimate in use is enough to learn from: 10 + √10.
    let mut g = Adaptive::gradient(Gradient::new(1, 1_000).smoothing(1.0));
    assert_eq!(g.next(10, 5, ms(10)), 13);
    // Fewer than half: the limit stays, however slow the call.
    assert_eq!(g.next(13, 1, ms(5_000)), 13);
    assert_eq!(g.next(13, 6, ms(5_000)), 13);
    // Enough in use again: the slow call now shrinks it.
    assert!(g.next(13, 13, ms(5_000)) < 13);
}
