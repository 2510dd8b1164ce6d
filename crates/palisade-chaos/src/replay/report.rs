//! [`ReplayReport`]: the outcome of each replayed exchange and a summary table.

use std::fmt;
use std::time::Duration;

use crate::replay::diff::Difference;

/// One replayed exchange.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExchangeOutcome {
    /// The recorded exchange's `seq`.
    pub seq: u64,
    /// The request method.
    pub method: String,
    /// The request URI.
    pub uri: String,
    /// The recorded status (`None`: the recorded service failed).
    pub expected_status: Option<u16>,
    /// The replayed status (`None`: the candidate failed).
    pub actual_status: Option<u16>,
    /// The recorded duration.
    pub recorded: Duration,
    /// How long the candidate took (to the end of its body).
    pub replayed: Duration,
    /// The differences found, empty when the candidate answered the same.
    pub differences: Vec<Difference>,
}

impl ExchangeOutcome {
    /// Whether the candidate answered the same as the recording.
    pub fn is_same(&self) -> bool {
        self.differences.is_empty()
    }

    /// Whether the candidate failed instead of answering.
    pub fn is_failed(&self) -> bool {
        self.differences
            .iter()
            .any(|d| matches!(d, Difference::Failed(_)))
    }
}

/// The outcome of a [`replay`](crate::replay::replay): one [`ExchangeOutcome`] per
/// recorded exchange, in the order sent. `Display` prints the summary table.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Each exchange, in the order sent.
    pub outcomes: Vec<ExchangeOutcome>,
}

/// Counts over a [`ReplayReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Summary {
    /// Exchanges replayed.
    pub total: usize,
    /// Answered the same.
    pub same: usize,
    /// Answered differently.
    pub different: usize,
    /// Failed instead of answering.
    pub failed: usize,
}

impl ReplayReport {
    /// The counts.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            total: self.outcomes.len(),
            ..Summary::default()
        };
        for o in &self.outcomes {
            if o.is_failed() {
                s.failed += 1;
            } else if o.is_same() {
                s.same += 1;
            } else {
                s.different += 1;
            }
        }
        s
    }

    /// Whether every exchange answered the same.
    pub fn is_clean(&self) -> bool {
        self.outcomes.iter().all(ExchangeOutcome::is_same)
    }
}

fn status(s: Option<u16>) -> String {
    s.map_or_else(|| "err".to_owned(), |s| s.to_string())
}

impl fmt::Display for ReplayReport {
    /// ```text
    /// seq  method  uri        status   recorded  replayed  differences
    /// 0    GET     /a         200=200  1.2ms     0.9ms     -
    /// 1    POST    /orders    200>500  3.0ms     0.4ms     status 200 -> 500
    /// 2 replayed: 1 same, 1 different, 0 failed
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri_w = self
            .outcomes
            .iter()
            .map(|o| o.uri.len().min(48))
            .max()
            .unwrap_or(0)
            .max(3);
        writeln!(
            f,
            "{:<5} {:<7} {:<uri_w$} {:<9} {:>9} {:>9}  differences",
            "seq", "method", "uri", "status", "recorded", "replayed"
        )?;
        for o in &self.outcomes {
            let uri: String = o.uri.chars().take(48).collect();
            let sign = if o.expected_status == o.actual_status {
                '='
            } else {
                '>'
            };
            let st = format!(
                "{}{sign}{}",
                status(o.expected_status),
                status(o.actual_status)
            );
            let diffs = if o.differences.is_empty() {
                "-".to_owned()
            } else {
                o.differences
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            writeln!(
                f,
                "{:<5} {:<7} {uri:<uri_w$} {st:<9} {:>9} {:>9}  {diffs}",
                o.seq,
                o.method,
                format!("{:.1}ms", o.recorded.as_secs_f64() * 1e3),
                format!("{:.1}ms", o.replayed.as_secs_f64() * 1e3),
            )?;
        }
        let s = self.summary();
        write!(
            f,
            "{} replayed: {} same, {} different, {} failed",
            s.total, s.same, s.different, s.failed
        )
    }
}
