//! [`ReplayOptions`]: pace, compared headers, ignored fields.

use http::{HeaderName, HeaderValue};

/// The largest response body read per replayed request: 16 MiB.
pub const MAX_REPLAY_BODY: usize = 16 << 20;

/// The most requests [`ReplayOptions::concurrency`] keeps in flight: 1024.
pub const MAX_REPLAY_CONCURRENCY: usize = 1024;

/// When replayed requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pace {
    /// Each request at its recorded offset from the first, or as soon as the previous one
    /// finished if the candidate is slower (requests go one at a time).
    Recorded,
    /// As fast as the candidate allows (its `poll_ready`): one after the other, or up to
    /// [`ReplayOptions::concurrency`] at once.
    #[default]
    Fast,
}

/// How [`replay`](crate::replay::replay) sends and compares.
///
/// Defaults: [`Pace::Fast`] one request at a time, compares the status, `content-type` and
/// the body (field by field when both are JSON), reads up to 1 MiB of each response.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub(crate) pace: Pace,
    pub(crate) headers: Vec<HeaderName>,
    pub(crate) ignored: Vec<String>,
    pub(crate) set: Vec<(HeaderName, HeaderValue)>,
    pub(crate) max_body: usize,
    pub(crate) concurrency: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            pace: Pace::Fast,
            headers: vec![http::header::CONTENT_TYPE],
            ignored: Vec::new(),
            set: Vec::new(),
            max_body: 1 << 20,
            concurrency: 1,
        }
    }

    /// When requests are sent.
    #[must_use]
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Compares response header `name` too. A header recorded as
    /// [`REDACTED`](crate::record::REDACTED) is not compared.
    #[must_use]
    pub fn compare_header(mut self, name: HeaderName) -> Self {
        if !self.headers.contains(&name) {
            self.headers.push(name);
        }
        self
    }

    /// Compares no response header.
    #[must_use]
    pub fn compare_no_headers(mut self) -> Self {
        self.headers.clear();
        self
    }

    /// Skips the JSON field at `pointer` (RFC 6901, e.g. `/created_at`) and everything under
    /// it when comparing bodies.
    #[must_use]
    pub fn ignore_field(mut self, pointer: impl Into<String>) -> Self {
        self.ignored.push(pointer.into());
        self
    }

    /// Sends header `name: value` on every replayed request, in place of the recorded one
    /// (e.g. fresh credentials for a redacted `authorization`).
    #[must_use]
    pub fn set_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.set.retain(|(n, _)| n != name);
        self.set.push((name, value));
        self
    }

    /// Reads at most `bytes` of each response body (clamped to [`MAX_REPLAY_BODY`]); a
    /// longer body is a [`Difference::Failed`](crate::replay::Difference::Failed).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes.min(MAX_REPLAY_BODY);
        self
    }

    /// With [`Pace::Fast`], keeps up to `n` requests in flight at once (clamped into
    /// `1..=`[`MAX_REPLAY_CONCURRENCY`]); a new one starts as soon as one finishes and the
    /// candidate is ready. The report keeps the recorded order. [`Pace::Recorded`] sends at
    /// the recorded offsets, one at a time, whatever this says. Default 1.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.clamp(1, MAX_REPLAY_CONCURRENCY);
        self
    }
}
