//! Edge cases of deadlines and classification pinned for mutation testing (see the crate
//! docs, "Mutation testing").

use std::time::Duration;

use http::Request;
use palisade_core::classify::GrpcCodes;
use palisade_core::deadline::grpc_timeout::{self, GrpcTimeoutError};
use palisade_core::{Classifier, Deadline, DefaultClassifier, GrpcCode, Outcome, classify_fn};
use tokio::time::Instant;

type E = std::io::Error;

/// A timeout too large for an `Instant` becomes a deadline 30 years away.
#[tokio::test(start_paused = true)]
async fn an_unrepresentable_timeout_is_thirty_years_away() {
    let now = Instant::now();
    let d = Deadline::after(Duration::MAX);
    assert_eq!(d.instant(), now + Duration::from_secs(86_400 * 365 * 30));
    assert_eq!(
        Deadline::after(Duration::from_secs(5)).instant(),
        now + Duration::from_secs(5)
    );
    assert_eq!(Deadline::at(now).instant(), now);
}

/// A deadline is expired exactly at its instant, not before.
#[tokio::test(start_paused = true)]
async fn expiry_is_inclusive() {
    let d = Deadline::after(Duration::from_millis(10));
    assert!(!d.is_expired());
    tokio::time::advance(Duration::from_millis(9)).await;
    assert!(!d.is_expired());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(d.is_expired());
    assert_eq!(d.remaining(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn min_with_keeps_the_earlier_one() {
    let early = Deadline::after(Duration::from_secs(1));
    let late = Deadline::after(Duration::from_secs(2));
    assert_eq!(late.min_with(Some(early)), early);
    assert_eq!(early.min_with(Some(late)), early);
    assert_eq!(early.min_with(None), early);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_read_from_the_request() {
    let d = Deadline::after(Duration::from_secs(3));
    let mut r = Request::new(());
    assert_eq!(Deadline::from_request(&r), None);
    r.extensions_mut().insert(d);
    assert_eq!(Deadline::from_request(&r), Some(d));
}

#[tokio::test(start_paused = true)]
async fn display_texts() {
    assert_eq!(
        Deadline::after(Duration::from_millis(1500)).to_string(),
        "deadline in 1.5s"
    );
    for (e, text) in [
        (GrpcTimeoutError::Empty, "grpc-timeout is empty"),
        (
            GrpcTimeoutError::TooManyDigits,
            "grpc-timeout has more than 8 digits",
        ),
        (
            GrpcTimeoutError::InvalidDigit,
            "grpc-timeout value is not a positive decimal integer",
        ),
        (
            GrpcTimeoutError::InvalidUnit,
            "grpc-timeout unit is not one of H M S m u n",
        ),
    ] {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn grpc_timeout_units_and_digit_limits() {
    for (s, d) in [
        ("7H", Duration::from_secs(7 * 3600)),
        ("7M", Duration::from_secs(7 * 60)),
        ("7S", Duration::from_secs(7)),
        ("7m", Duration::from_millis(7)),
        ("7u", Duration::from_micros(7)),
        ("7n", Duration::from_nanos(7)),
        ("12345678m", Duration::from_millis(12_345_678)),
        ("90S", Duration::from_secs(90)),
    ] {
        assert_eq!(grpc_timeout::parse(s.as_bytes()), Ok(d), "{s}");
    }
    assert_eq!(
        grpc_timeout::parse(b"1234567890S"),
        Err(GrpcTimeoutError::TooManyDigits)
    );
    assert_eq!(grpc_timeout::encode(Duration::from_nanos(1)), "1n");
    assert_eq!(
        grpc_timeout::encode(Duration::from_secs(86_400 * 365 * 100)),
        "52560000M"
    );
    assert_eq!(
        grpc_timeout::encode(Duration::from_secs(86_400 * 365 * 1000)),
        "8760000H"
    );
    assert_eq!(grpc_timeout::encode(Duration::MAX), "99999999H");
}

#[test]
fn outcome_predicates() {
    assert!(Outcome::Failure.is_failure());
    assert!(!Outcome::Success.is_failure());
    assert!(!Outcome::Ignored.is_failure());
    assert!(Outcome::Success.is_success());
    assert!(!Outcome::Failure.is_success());
    assert!(!Outcome::Ignored.is_success());
}

#[test]
fn code_sets_are_bit_sets() {
    let s = GrpcCodes::empty()
        .with(GrpcCode::Aborted)
        .with(GrpcCode::Aborted)
        .with(GrpcCode::Unknown);
    assert!(s.contains(GrpcCode::Aborted));
    assert!(s.contains(GrpcCode::Unknown));
    assert!(!s.contains(GrpcCode::Ok));
    assert!(!s.contains(GrpcCode::Cancelled));
    let t = s.without(GrpcCode::Aborted).without(GrpcCode::Aborted);
    assert!(!t.contains(GrpcCode::Aborted));
    assert!(t.contains(GrpcCode::Unknown));
    assert!(!GrpcCodes::empty().contains(GrpcCode::Ok));
    assert_eq!(format!("{:?}", GrpcCodes::empty()), "{}");
    assert_eq!(
        format!("{:?}", GrpcCodes::default_failures()),
        "{Unknown, DeadlineExceeded, ResourceExhausted, Internal, Unavailable, DataLoss}"
    );
}

#[test]
fn classifier_settings_and_closures() {
    let grpc = |code: &'static str| {
        http::Response::builder()
            .header("grpc-status", code)
            .body(())
            .unwrap()
    };
    let c = DefaultClassifier::new().grpc_failures(GrpcCodes::empty().with(GrpcCode::Aborted));
    assert_eq!(
        Classifier::<_, E>::classify(&c, Ok(&grpc("10"))),
        Outcome::Failure
    );
    assert_eq!(
        Classifier::<_, E>::classify(&c, Ok(&grpc("14"))),
        Outcome::Success
    );
    let lenient = DefaultClassifier::new().timeouts_and_throttling_fail(false);
    let res = |s: u16| http::Response::builder().status(s).body(()).unwrap();
    assert_eq!(
        Classifier::<_, E>::classify(&lenient, Ok(&res(408))),
        Outcome::Success
    );
    assert_eq!(
        Classifier::<_, E>::classify(&lenient, Ok(&res(503))),
        Outcome::Failure
    );
    let strict = DefaultClassifier::new();
    assert_eq!(
        Classifier::<_, E>::classify(&strict, Ok(&res(408))),
        Outcome::Failure
    );
    assert_eq!(
        Classifier::<_, E>::classify(&strict, Ok(&res(409))),
        Outcome::Success
    );

    let f = classify_fn(|r: Result<&u8, &E>| match r {
        Ok(&0) => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    });
    assert_eq!(f.classify(Ok(&0)), Outcome::Ignored);
    assert_eq!(f.classify(Ok(&1)), Outcome::Success);
    assert_eq!(f.classify(Err(&E::other("x"))), Outcome::Failure);
    assert_eq!(format!("{f:?}"), "ClassifyFn { .. }");
}
