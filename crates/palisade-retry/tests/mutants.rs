//! Edge cases pinned for mutation testing (see the crate docs, "Mutation testing").

use std::time::Duration;

use http::StatusCode;
use palisade_retry::backoff::MAX_BACKOFF;
use palisade_retry::{
    Backoff, BackoffKind, Budget, Decision, DefaultPredicate, Predicate, RetryReason, TpsBudget,
};

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn accessors_return_what_was_built() {
    let b = Backoff::exponential(MS(100), MS(900)).multiplier(3.0);
    assert_eq!(b.kind(), BackoffKind::Exponential);
    assert_eq!(b.initial(), MS(100));
    assert_eq!(b.max(), MS(900));
    assert!((b.get_multiplier() - 3.0).abs() < f64::EPSILON);
    assert!((Backoff::constant(MS(5)).get_multiplier() - 2.0).abs() < f64::EPSILON);
}

#[test]
fn delays_above_an_hour_are_capped_and_below_are_kept() {
    let b = Backoff::exponential(Duration::from_secs(7200), Duration::from_secs(7200));
    assert_eq!(b.initial(), MAX_BACKOFF);
    assert_eq!(b.max(), MAX_BACKOFF);
    let b = Backoff::constant(Duration::from_secs(3599));
    assert_eq!(b.initial(), Duration::from_secs(3599));
    assert_eq!(b.max(), Duration::from_secs(3599));
}

#[test]
fn status_400_is_returned_and_399_is_a_success() {
    let check = |s: u16| {
        let r = http::Response::builder().status(s).body(()).unwrap();
        DefaultPredicate.check(Ok(&r))
    };
    assert_eq!(check(400), Decision::Return);
    assert_eq!(check(399), Decision::Success);
    assert_eq!(check(302), Decision::Success);
    assert_eq!(
        check(502),
        Decision::Retry {
            reason: RetryReason::Status(StatusCode::BAD_GATEWAY),
            after: None
        }
    );
}

#[tokio::test(start_paused = true)]
async fn tps_budget_debug_shows_its_amounts() {
    let b = TpsBudget::new(Duration::from_secs(1), 2, 0.5);
    b.deposit();
    assert_eq!(
        format!("{b:?}"),
        "TpsBudget { reserve: 4, deposit: 1, withdraw: 2, balance: 1, .. }"
    );
}

/// A deposit counts for exactly `ttl` (ten windows) after the window it was made in ends,
/// rotating at exact window boundaries: stepping the clock by one window at a time, the
/// deposit made at 0 still counts at 1 s and is gone at 1.1 s.
#[tokio::test(start_paused = true)]
async fn tps_deposits_rotate_out_at_the_exact_window_boundary() {
    // A retry costs 2 deposits, no reserve: a failed withdraw changes nothing.
    let b = TpsBudget::new(Duration::from_secs(1), 0, 0.5);
    let c = TpsBudget::new(Duration::from_secs(1), 0, 0.5);
    b.deposit();
    c.deposit();
    for _ in 0..10 {
        tokio::time::advance(MS(100)).await;
        assert!(!b.withdraw());
        assert!(!c.withdraw());
    }
    // At 1 s the first deposit still counts: with a second one, a retry is allowed.
    c.deposit();
    assert!(c.withdraw());
    // At 1.1 s it has rotated out: a new deposit alone is not enough.
    tokio::time::advance(MS(100)).await;
    b.deposit();
    assert!(!b.withdraw());
}

/// Deposits made in successive windows, one window or two apart, all count while they
/// are within `ttl`: the ring advances one slot per window and clears only skipped ones.
#[tokio::test(start_paused = true)]
async fn tps_deposits_in_successive_windows_accumulate() {
    for gap in [MS(100), MS(200)] {
        // A retry costs 4 deposits, no reserve.
        let b = TpsBudget::new(Duration::from_secs(1), 0, 0.25);
        for i in 0..4 {
            if i > 0 {
                tokio::time::advance(gap).await;
            }
            b.deposit();
        }
        assert!(b.withdraw(), "{gap:?}");
        assert!(!b.withdraw(), "{gap:?}");
    }
}

/// `grpc-retry-pushback-ms` is digits only: a sign that `i32` parsing would accept is
/// refused.
#[test]
fn pushback_refuses_signs() {
    use palisade_retry::policy::parse_pushback;
    assert_eq!(parse_pushback(b"+5"), None);
    assert_eq!(parse_pushback(b"-5"), None);
    assert_eq!(parse_pushback(b""), None);
    assert_eq!(parse_pushback(b"5"), Some(5));
}
