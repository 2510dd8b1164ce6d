//! Replays a recording (see [`record`](crate::record)) against a candidate — a Tower
//! service, or a URL through [`HttpTarget`] (feature `cli`) — and reports how its answers
//! differ: status, chosen headers, JSON body fields; `Display` on the [`ReplayReport`]
//! prints a summary table. The `palisade-replay FILE URL` binary (feature `cli`) does the
//! same from a shell.
//!
//! See the [`record`](crate::record) module for an example of a round trip.

mod diff;
#[cfg(feature = "cli")]
mod http;
mod options;
mod report;
mod run;

pub use diff::{Difference, MAX_FIELD_DIFFERENCES, diff_json};
#[cfg(feature = "cli")]
pub use http::HttpTarget;
pub use options::{MAX_REPLAY_BODY, MAX_REPLAY_CONCURRENCY, Pace, ReplayOptions};
pub use report::{ExchangeOutcome, ReplayReport, Summary};
pub use run::replay;
