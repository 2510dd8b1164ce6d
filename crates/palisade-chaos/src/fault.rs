//! What can be injected: latency, aborts, errors and a response bandwidth limit.

use std::num::NonZeroU64;
use std::time::Duration;

use http::StatusCode;
use palisade_core::GrpcCode;

#[cfg(test)]
use crate::rng::Rng;
use crate::rng::{Chance, Draws};

/// Longest delay any fault may inject: one hour.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// How long an injected delay lasts.
///
/// Every variant is bounded by [`MAX_DELAY`]; values above it are clamped when the layer is
/// built in code and refused by [`FaultConfig`](crate::FaultConfig).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum Latency {
    /// Always this long (`{"fixed": "100ms"}`).
    Fixed(
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        #[cfg_attr(feature = "schemars", schemars(with = "String"))]
        Duration,
    ),
    /// Uniformly distributed in `[min, max]`.
    Uniform {
        /// Shortest delay.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        #[cfg_attr(feature = "schemars", schemars(with = "String"))]
        min: Duration,
        /// Longest delay.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        #[cfg_attr(feature = "schemars", schemars(with = "String"))]
        max: Duration,
    },
    /// Normally distributed around `mean` with `std_dev`, clamped into `[min, max]`.
    Normal {
        /// The mean.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        #[cfg_attr(feature = "schemars", schemars(with = "String"))]
        mean: Duration,
        /// The standard deviation.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        #[cfg_attr(feature = "schemars", schemars(with = "String"))]
        std_dev: Duration,
        /// Lower bound of every sample.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        #[cfg_attr(feature = "schemars", schemars(with = "String"))]
        min: Duration,
        /// Upper bound of every sample.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        #[cfg_attr(feature = "schemars", schemars(with = "String"))]
        max: Duration,
    },
}

impl Latency {
    /// A fixed delay.
    pub const fn fixed(delay: Duration) -> Self {
        Self::Fixed(delay)
    }
    /// A delay uniformly distributed in `[min, max]` (swapped if given the wrong way round).
    pub const fn uniform(min: Duration, max: Duration) -> Self {
        Self::Uniform { min, max }
    }
    /// A normally distributed delay, clamped into `[min, max]`.
    pub const fn normal(mean: Duration, std_dev: Duration, min: Duration, max: Duration) -> Self {
        Self::Normal {
            mean,
            std_dev,
            min,
            max,
        }
    }

    /// The same distribution with every bound clamped to [`MAX_DELAY`] and `min <= max`.
    pub(crate) fn clamped(self) -> Self {
        let c = |d: Duration| d.min(MAX_DELAY);
        match self {
            Self::Fixed(d) => Self::Fixed(c(d)),
            Self::Uniform { min, max } => Self::Uniform {
                min: c(min.min(max)),
                max: c(min.max(max)),
            },
            Self::Normal {
                mean,
                std_dev,
                min,
                max,
            } => Self::Normal {
                mean: c(mean),
                std_dev: c(std_dev),
                min: c(min.min(max)),
                max: c(min.max(max)),
            },
        }
    }

    pub(crate) fn sample(&self, rng: &mut Draws<'_>) -> Duration {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform { min, max } => {
                let span = max.saturating_sub(min).as_nanos() as f64;
                min + Duration::from_nanos((rng.next_f64() * span) as u64)
            }
            Self::Normal {
                mean,
                std_dev,
                min,
                max,
            } => {
                // Box-Muller; u1 in (0, 1] so ln is finite.
                let u1 = 1.0 - rng.next_f64();
                let u2 = rng.next_f64();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let nanos = mean.as_nanos() as f64 + z * std_dev.as_nanos() as f64;
                let lo = min.as_nanos() as f64;
                let hi = max.as_nanos() as f64;
                Duration::from_nanos(nanos.clamp(lo, hi) as u64)
            }
        }
    }
}

/// What an abort answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortWith {
    /// An HTTP status (problem+json body). For a gRPC request the status is mapped to a gRPC
    /// code as gRPC maps HTTP statuses (429, 502, 503, 504 → UNAVAILABLE, …).
    Http(StatusCode),
    /// A gRPC trailers-only response (HTTP 200) with this `grpc-status`.
    Grpc(GrpcCode),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DelayFault {
    pub(crate) latency: Latency,
    pub(crate) chance: Chance,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AbortFault {
    pub(crate) with: AbortWith,
    pub(crate) chance: Chance,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ThrottleFault {
    pub(crate) bytes_per_second: NonZeroU64,
    pub(crate) chance: Chance,
}

/// The faults chosen for one request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) delay: Option<Duration>,
    pub(crate) abort: Option<AbortWith>,
    pub(crate) error: bool,
    pub(crate) throttle: Option<NonZeroU64>,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.delay.is_none() && self.abort.is_none() && !self.error && self.throttle.is_none()
    }
}

/// gRPC's mapping of HTTP statuses to codes (`grpc/doc/http-grpc-status-mapping.md`).
pub(crate) fn grpc_code_for(status: StatusCode) -> GrpcCode {
    match status.as_u16() {
        400 => GrpcCode::Internal,
        401 => GrpcCode::Unauthenticated,
        403 => GrpcCode::PermissionDenied,
        404 => GrpcCode::Unimplemented,
        429 | 502..=504 => GrpcCode::Unavailable,
        _ => GrpcCode::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_within_bounds() {
        let rng = Rng::new(3);
        let ms = Duration::from_millis;
        let u = Latency::uniform(ms(10), ms(20));
        let n = Latency::normal(ms(100), ms(50), ms(80), ms(120));
        let (mut lo, mut hi) = (false, false);
        for _ in 0..10_000 {
            let d = u.sample(&mut rng.draws());
            assert!((ms(10)..=ms(20)).contains(&d), "{d:?}");
            let d = n.sample(&mut rng.draws());
            assert!((ms(80)..=ms(120)).contains(&d), "{d:?}");
            lo |= d == ms(80);
            hi |= d == ms(120);
        }
        assert!(lo && hi, "a 50 ms deviation must hit both clamps");
        assert_eq!(Latency::fixed(ms(5)).sample(&mut rng.draws()), ms(5));
        assert_eq!(
            Latency::fixed(Duration::from_secs(7200)).clamped(),
            Latency::fixed(MAX_DELAY)
        );
        assert_eq!(
            Latency::uniform(ms(20), ms(10)).clamped(),
            Latency::uniform(ms(10), ms(20))
        );
    }
}
