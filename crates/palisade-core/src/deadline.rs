//! Request deadlines and the `grpc-timeout` header.
//!
//! A [`Deadline`] in the request's extensions is the point in time by which the whole
//! request (all retries included, as gRFC A6 and Envoy's route timeout define it) must be
//! done. The timeout layer puts it there; retry reads it so it never sleeps past it;
//! outbound clients forward the remaining budget as `grpc-timeout`.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use crate::grpc::GRPC_TIMEOUT;
use crate::request::RequestParts;

/// The instant by which a request must complete (a `tokio::time::Instant`, so it follows
/// `tokio::time::pause()` in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

/// A duration far enough away to mean "no deadline" without overflowing an `Instant`.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

impl Deadline {
    /// A deadline at `instant`.
    pub const fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// A deadline `timeout` from now (saturating at about 30 years).
    pub fn after(timeout: Duration) -> Self {
        let now = Instant::now();
        Self(now.checked_add(timeout).unwrap_or_else(|| now + FAR))
    }

    /// The instant.
    pub const fn instant(self) -> Instant {
        self.0
    }

    /// Time left until the deadline, zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn is_expired(self) -> bool {
        Instant::now() >= self.0
    }

    /// The earlier of `self` and `other`.
    #[must_use]
    pub fn min_with(self, other: Option<Self>) -> Self {
        match other {
            // `<=` is equivalent: equal deadlines are the same value (excluded in
            // .cargo/mutants.toml).
            Some(o) if o < self => o,
            _ => self,
        }
    }

    /// The deadline carried in a request's extensions, if any.
    pub fn from_request<R: RequestParts + ?Sized>(req: &R) -> Option<Self> {
        req.extensions()?.get::<Self>().copied()
    }

    /// Writes the remaining time as `grpc-timeout` (for an outgoing request).
    pub fn write_grpc_timeout(self, headers: &mut HeaderMap) {
        headers.insert(GRPC_TIMEOUT, grpc_timeout::encode(self.remaining()));
    }
}

/// Parsing and encoding of the `grpc-timeout` header (gRPC's `PROTOCOL-HTTP2.md`,
/// "Requests"): a positive ASCII integer of at most 8 digits followed by a unit, `H`, `M`,
/// `S`, `m`, `u` or `n`, without spaces. Encoding picks the finest unit whose value fits in
/// 8 digits, rounding up (as grpc-go's `encodeTimeout`); zero or less encodes as `0n`.
/// Decoding refuses more than 8 digits, an empty value, signs, spaces and unknown units; `0`
/// means already expired.
pub mod grpc_timeout {
    use super::{Duration, HeaderValue, fmt};

    /// Largest value the header may carry in one unit (8 digits).
    pub const MAX_VALUE: u64 = 99_999_999;

    /// Why a `grpc-timeout` value was refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum GrpcTimeoutError {
        /// The value is empty or has no digits.
        Empty,
        /// More than 8 digits.
        TooManyDigits,
        /// A character that is not an ASCII digit before the unit (signs, spaces, …).
        InvalidDigit,
        /// The unit is not one of `H M S m u n`.
        InvalidUnit,
    }

    impl fmt::Display for GrpcTimeoutError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Self::Empty => "grpc-timeout is empty",
                Self::TooManyDigits => "grpc-timeout has more than 8 digits",
                Self::InvalidDigit => "grpc-timeout value is not a positive decimal integer",
                Self::InvalidUnit => "grpc-timeout unit is not one of H M S m u n",
            })
        }
    }

    impl std::error::Error for GrpcTimeoutError {}

    /// Parses a `grpc-timeout` value: 1–8 ASCII digits followed by one of `H M S m u n`.
    /// `0` is accepted and means "already expired".
    pub fn parse(value: &[u8]) -> Result<Duration, GrpcTimeoutError> {
        let (&unit, digits) = value.split_last().ok_or(GrpcTimeoutError::Empty)?;
        if digits.is_empty() {
            return Err(GrpcTimeoutError::Empty);
        }
        if digits.len() > 8 {
            return Err(GrpcTimeoutError::TooManyDigits);
        }
        let mut n: u64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Err(GrpcTimeoutError::InvalidDigit);
            }
            n = n * 10 + u64::from(d - b'0');
        }
        Ok(match unit {
            b'H' => Duration::from_secs(n * 3600),
            b'M' => Duration::from_secs(n * 60),
            b'S' => Duration::from_secs(n),
            b'm' => Duration::from_millis(n),
            b'u' => Duration::from_micros(n),
            b'n' => Duration::from_nanos(n),
            _ => return Err(GrpcTimeoutError::InvalidUnit),
        })
    }

    /// Encodes a duration as grpc-go does: the finest unit whose value fits in 8 digits,
    /// rounding up; zero encodes as `"0n"`.
    pub fn encode(timeout: Duration) -> HeaderValue {
        let nanos = timeout.as_nanos();
        if nanos == 0 {
            return HeaderValue::from_static("0n");
        }
        const UNITS: [(u128, char); 5] = [
            (1, 'n'),
            (1_000, 'u'),
            (1_000_000, 'm'),
            (1_000_000_000, 'S'),
            (60_000_000_000, 'M'),
        ];
        for (per, unit) in UNITS {
            let v = nanos.div_ceil(per);
            if v <= u128::from(MAX_VALUE) {
                return value(v, unit);
            }
        }
        value(
            nanos.div_ceil(3_600_000_000_000).min(u128::from(MAX_VALUE)),
            'H',
        )
    }

    fn value(v: u128, unit: char) -> HeaderValue {
        HeaderValue::from_str(&format!("{v}{unit}"))
            .expect("digits and a unit are a valid header value")
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline in {:?}", self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::grpc_timeout::{GrpcTimeoutError, encode, parse};
    use super::*;

    #[test]
    fn decode_vectors() {
        // SPECS §3 "decode grpc-timeout" vectors.
        let ok = [
            ("1S", Duration::from_secs(1)),
            ("100m", Duration::from_millis(100)),
            ("5M", Duration::from_secs(300)),
            ("1H", Duration::from_secs(3600)),
            ("250u", Duration::from_micros(250)),
            ("99999999n", Duration::from_nanos(99_999_999)),
            ("0m", Duration::ZERO),
            ("99999999H", Duration::from_secs(99_999_999 * 3600)),
        ];
        for (s, d) in ok {
            assert_eq!(parse(s.as_bytes()), Ok(d), "{s}");
        }
        let bad = [
            ("123456789n", GrpcTimeoutError::TooManyDigits),
            ("1s", GrpcTimeoutError::InvalidUnit),
            ("1 S", GrpcTimeoutError::InvalidDigit),
            ("S", GrpcTimeoutError::Empty),
            ("", GrpcTimeoutError::Empty),
            ("-1S", GrpcTimeoutError::InvalidDigit),
            ("+1S", GrpcTimeoutError::InvalidDigit),
            ("1x", GrpcTimeoutError::InvalidUnit),
            ("99999999999999999999S", GrpcTimeoutError::TooManyDigits),
        ];
        for (s, e) in bad {
            assert_eq!(parse(s.as_bytes()), Err(e), "{s}");
        }
    }

    #[test]
    fn encode_vectors() {
        // SPECS §3 "encode" vectors (grpc-go encodeTimeout).
        let v = [
            (Duration::from_millis(50), "50000000n"),
            (Duration::from_millis(100), "100000u"),
            (Duration::from_secs(1), "1000000u"),
            (Duration::from_secs(120), "120000m"),
            (Duration::from_secs(3600), "3600000m"),
            (Duration::ZERO, "0n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_nanos(100_000_001), "100001u"),
        ];
        for (d, s) in v {
            assert_eq!(encode(d), s, "{d:?}");
        }
    }

    proptest::proptest! {
        // Encoding never shortens the budget by more than rounding up, and always parses.
        #[test]
        fn encode_roundtrips_up(nanos in 0u64..u64::MAX / 4) {
            let d = Duration::from_nanos(nanos);
            let back = parse(encode(d).as_bytes()).unwrap();
            proptest::prop_assert!(back >= d);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)) {
            let _ = parse(&bytes);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_follows_paused_time() {
        let d = Deadline::after(Duration::from_secs(1));
        assert_eq!(d.remaining(), Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(d.remaining(), Duration::from_millis(700));
        let mut h = HeaderMap::new();
        d.write_grpc_timeout(&mut h);
        // SPECS §3 "propagate": 1S incoming, 300 ms spent → 700 ms outgoing.
        assert_eq!(h["grpc-timeout"], "700000u");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(d.is_expired());
        assert_eq!(d.remaining(), Duration::ZERO);
        let earlier = Deadline::after(Duration::from_millis(1));
        assert_eq!(d.min_with(Some(earlier)), d);
        assert_eq!(Deadline::after(Duration::from_secs(9)).min_with(Some(d)), d);
    }
}
