//! What a check is and what it returns.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// The health of one check or of the whole service (draft-inadarei-api-health-check §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Healthy.
    Pass,
    /// Healthy, with concerns (served with HTTP 200).
    Warn,
    /// Unhealthy (served with HTTP 503 when it decides the overall status).
    Fail,
}

impl Status {
    /// The lowercase name used on the wire: `"pass"`, `"warn"`, `"fail"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a check found: a status, an optional message and an optional
/// measurement.
///
/// Checks may return a [`Status`], a `Result<(), E: Display>` (`Err` → fail with the error
/// text as output) or a `bool` (`true` → pass); all convert into this.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// The status.
    pub status: Status,
    /// Human-readable detail (`output` in the JSON), typically for warn and fail.
    pub output: Option<String>,
    /// A measurement (`observedValue`, `observedUnit`); when `None`, the check's own
    /// duration in milliseconds is reported.
    pub observed: Option<(f64, Cow<'static, str>)>,
}

impl CheckOutcome {
    /// A passing outcome.
    pub const fn pass() -> Self {
        Self {
            status: Status::Pass,
            output: None,
            observed: None,
        }
    }
    /// A warning with a message.
    pub fn warn(output: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            output: Some(output.into()),
            observed: None,
        }
    }
    /// A failure with a message.
    pub fn fail(output: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            output: Some(output.into()),
            observed: None,
        }
    }
    /// Attaches a measurement, e.g. `(0.93, "percent")` for a saturation check.
    #[must_use]
    pub fn with_observed(mut self, value: f64, unit: impl Into<Cow<'static, str>>) -> Self {
        self.observed = Some((value, unit.into()));
        self
    }
    /// Attaches (or replaces) the message.
    #[must_use]
    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }
}

impl From<Status> for CheckOutcome {
    fn from(status: Status) -> Self {
        Self {
            status,
            output: None,
            observed: None,
        }
    }
}

impl From<bool> for CheckOutcome {
    fn from(healthy: bool) -> Self {
        if healthy {
            Self::pass()
        } else {
            Self::from(Status::Fail)
        }
    }
}

impl<E: fmt::Display> From<Result<(), E>> for CheckOutcome {
    fn from(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Self::pass(),
            Err(e) => Self::fail(e.to_string()),
        }
    }
}

/// The future a [`Check`] returns. Checks run in the background or once per interval,
/// never per request, so one box per run is fine.
pub type CheckFuture = Pin<Box<dyn Future<Output = CheckOutcome> + Send + 'static>>;

/// A health check: anything that can be asked, asynchronously, how it is doing.
///
/// Most checks are closures wrapped with [`check_fn`] (async) or [`check_sync`] (a cheap
/// synchronous read such as a circuit breaker's state). Implement the trait for reusable
/// checks that hold a client.
pub trait Check: Send + Sync + 'static {
    /// Runs the check once. The registry applies the timeout; a check need not.
    fn check(&self) -> CheckFuture;
}

/// A [`Check`] from an async closure; see [`check_fn`].
#[derive(Clone, Copy)]
pub struct FnCheck<F>(F);

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck").finish_non_exhaustive()
    }
}

/// Makes a [`Check`] from an async closure returning anything that converts into a
/// [`CheckOutcome`] ([`Status`], `bool`, `Result<(), E>`, [`CheckOutcome`]).
///
/// ```
/// use palisade_health::{Status, check_fn};
/// let db = check_fn(|| async { Ok::<(), std::io::Error>(()) });
/// let disk = check_fn(|| async { Status::Warn });
/// # let _ = (db, disk);
/// ```
pub fn check_fn<F, Fut, O>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: Into<CheckOutcome>,
{
    FnCheck(f)
}

impl<F, Fut, O> Check for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: Into<CheckOutcome>,
{
    fn check(&self) -> CheckFuture {
        let fut = (self.0)();
        Box::pin(async move { fut.await.into() })
    }
}

/// A [`Check`] from a synchronous closure; see [`check_sync`].
#[derive(Clone, Copy)]
pub struct SyncCheck<F>(F);

impl<F> fmt::Debug for SyncCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncCheck").finish_non_exhaustive()
    }
}

/// Makes a [`Check`] from a cheap synchronous closure, e.g. a breaker's state:
///
/// ```
/// use palisade_health::{CheckOutcome, check_sync};
/// # let breaker_is_open = || false;
/// let breaker = check_sync(move || {
///     if breaker_is_open() { CheckOutcome::warn("circuit open") } else { CheckOutcome::pass() }
/// });
/// # let _ = breaker;
/// ```
pub fn check_sync<F, O>(f: F) -> SyncCheck<F>
where
    F: Fn() -> O + Send + Sync + 'static,
    O: Into<CheckOutcome>,
{
    SyncCheck(f)
}

impl<F, O> Check for SyncCheck<F>
where
    F: Fn() -> O + Send + Sync + 'static,
    O: Into<CheckOutcome>,
{
    fn check(&self) -> CheckFuture {
        let outcome = (self.0)().into();
        Box::pin(std::future::ready(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(CheckOutcome::from(true).status, Status::Pass);
        assert_eq!(CheckOutcome::from(false).status, Status::Fail);
        let err: Result<(), &str> = Err("connection refused");
        let o = CheckOutcome::from(err);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.output.as_deref(), Some("connection refused"));
        assert_eq!(Status::Warn.to_string(), "warn");
        assert!(Status::Fail > Status::Warn && Status::Warn > Status::Pass);
    }
}
