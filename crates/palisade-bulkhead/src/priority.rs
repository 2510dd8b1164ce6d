//! Priority lanes: which lane a request queues in (higher lanes are admitted first).

use std::fmt;

use http::{HeaderName, HeaderValue};
use palisade_core::RequestParts;

/// Assigns a request its lane, `0..lanes` (higher is more important; out-of-range values are
/// clamped to the top lane).
pub trait Priority<R>: Clone + Send + Sync + 'static {
    /// The request's lane.
    fn lane(&self, req: &R) -> usize;
}

/// Every request in lane 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPriority;

impl<R> Priority<R> for NoPriority {
    fn lane(&self, _req: &R) -> usize {
        0
    }
}

/// The lane named by a request header: each listed value maps to a lane, anything else
/// (or no header) goes to `default`.
///
/// ```
/// use palisade_bulkhead::{HeaderPriority, Priority};
/// let p = HeaderPriority::new(http::HeaderName::from_static("x-priority"), 0)
///     .value("high", 2)
///     .value("normal", 1);
/// let req = http::Request::get("/").header("x-priority", "high").body(()).unwrap();
/// assert_eq!(p.lane(&req), 2);
/// assert_eq!(p.lane(&http::Request::new(())), 0);
/// ```
#[derive(Debug, Clone)]
pub struct HeaderPriority {
    header: HeaderName,
    values: Vec<(HeaderValue, usize)>,
    default: usize,
}

impl HeaderPriority {
    /// Reads `header`; unknown or missing values go to lane `default`.
    pub fn new(header: HeaderName, default: usize) -> Self {
        Self {
            header,
            values: Vec::new(),
            default,
        }
    }
    /// Maps the header value `value` to `lane`.
    #[must_use]
    pub fn value(mut self, value: &'static str, lane: usize) -> Self {
        self.values.push((HeaderValue::from_static(value), lane));
        self
    }
}

impl<R: RequestParts> Priority<R> for HeaderPriority {
    fn lane(&self, req: &R) -> usize {
        req.headers()
            .get(&self.header)
            .and_then(|v| self.values.iter().find(|(k, _)| k == v))
            .map_or(self.default, |(_, lane)| *lane)
    }
}

/// A [`Priority`] from a closure; see [`priority_fn`].
#[derive(Clone, Copy)]
pub struct PriorityFn<F>(F);

impl<F> fmt::Debug for PriorityFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityFn").finish_non_exhaustive()
    }
}

/// Makes a [`Priority`] from `Fn(&R) -> usize`.
pub fn priority_fn<F>(f: F) -> PriorityFn<F> {
    PriorityFn(f)
}

impl<R, F> Priority<R> for PriorityFn<F>
where
    F: Fn(&R) -> usize + Clone + Send + Sync + 'static,
{
    fn lane(&self, req: &R) -> usize {
        (self.0)(req)
    }
}
