//! Property tests of the aggregation rule and the saturation thresholds.

use palisade_health::{Check, CheckOutcome, Status, aggregate, saturation_check};
use proptest::prelude::*;

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Pass), Just(Status::Warn), Just(Status::Fail)]
}

fn run(check: &impl Check) -> CheckOutcome {
    let mut fut = check.check();
    let waker = std::task::Waker::noop();
    match fut
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(o) => o,
        std::task::Poll::Pending => panic!("saturation checks are synchronous"),
    }
}

proptest! {
    #[test]
    fn aggregate_matches_the_spec(checks in prop::collection::vec((any::<bool>(), status()), 0..12), draining in any::<bool>()) {
        let got = aggregate(checks.iter().copied(), draining);
        let critical_fail = checks.iter().any(|(c, s)| *c && *s == Status::Fail);
        let any_unhealthy = checks.iter().any(|(_, s)| *s != Status::Pass);
        let want = if draining || critical_fail {
            Status::Fail
        } else if any_unhealthy {
            Status::Warn
        } else {
            Status::Pass
        };
        prop_assert_eq!(got, want);
        // Adding a passing check never changes the verdict.
        let mut more = checks.clone();
        more.push((true, Status::Pass));
        prop_assert_eq!(aggregate(more, draining), got);
    }

    #[test]
    fn saturation_is_monotonic(capacity in 1usize..500, a in 0usize..600, b in 0usize..600, warn in 1u32..=100, extra in 0u32..=100) {
        let warn_at = f64::from(warn) / 100.0;
        let fail_at = (f64::from(warn + extra) / 100.0).min(1.0);
        let (lo, hi) = (a.min(b), a.max(b));
        let lo_check = saturation_check(move || (lo, capacity), warn_at, fail_at).unwrap();
        let hi_check = saturation_check(move || (hi, capacity), warn_at, fail_at).unwrap();
        let (lo_out, hi_out) = (run(&lo_check), run(&hi_check));
        prop_assert!(lo_out.status <= hi_out.status);
        let expected = |n: usize| {
            let ratio = n as f64 / capacity as f64;
            if ratio >= fail_at { Status::Fail } else if ratio >= warn_at { Status::Warn } else { Status::Pass }
        };
        prop_assert_eq!(lo_out.status, expected(lo));
        prop_assert_eq!(hi_out.status, expected(hi));
    }
}
