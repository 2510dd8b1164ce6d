//! [`RecordLayer`]: the recorder's builder, and [`RecordHandle`]: flush and counters.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderName;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use tokio::time::Instant;
use tower_layer::Layer;

use crate::record::draft::HeaderRules;
use crate::record::service::Record;
use crate::record::writer::Sink;
use crate::rng::{Chance, Rng};

/// The largest body prefix recorded per message: 16 MiB.
pub const MAX_BODY: usize = 16 << 20;
/// The largest number of finished exchanges waiting for the writer: 65 536.
pub const MAX_CAPACITY: usize = 1 << 16;
/// The default number of finished exchanges waiting for the writer.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Per-service settings, fixed when the layer makes a service.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) limit: usize,
    pub(crate) rules: HeaderRules,
    pub(crate) chance: Chance,
}

/// State shared by every service of one recorder.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) sink: Arc<Sink>,
    pub(crate) rng: Rng,
    pub(crate) seq: AtomicU64,
    pub(crate) start: Instant,
}

/// Records request/response pairs to a file as JSON lines (one [`Exchange`] each), for
/// [`replay`](crate::replay::replay) against a candidate.
///
/// Defaults: every request recorded, all headers with `authorization`, `proxy-authorization`,
/// `cookie` and `set-cookie` values redacted, bodies up to 64 KiB each, room for 1024
/// exchanges waiting for the writer.
///
/// The request path never touches the file: a finished exchange goes over a bounded channel
/// to a writer thread; when the channel is full the exchange is dropped and counted
/// ([`RecordStats::dropped`]). A request not sampled goes straight through without
/// allocating.
///
/// [`Exchange`]: crate::record::Exchange
#[derive(Debug, Clone)]
pub struct RecordLayer {
    settings: Settings,
    state: Arc<State>,
}

impl RecordLayer {
    /// Records to the file at `path` (created, or appended to), with room for
    /// [`DEFAULT_CAPACITY`] waiting exchanges.
    pub fn to_file(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Self::to_writer(file, DEFAULT_CAPACITY)
    }

    /// Records to `out`, with room for `capacity` exchanges waiting for the writer (clamped
    /// into `1..=`[`MAX_CAPACITY`]).
    pub fn to_writer(out: impl Write + Send + 'static, capacity: usize) -> io::Result<Self> {
        let sink = Sink::start(Box::new(out), capacity.clamp(1, MAX_CAPACITY))?;
        Ok(Self {
            settings: Settings {
                limit: crate::record::DEFAULT_MAX_BODY,
                rules: HeaderRules {
                    redact: vec![AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE, SET_COOKIE],
                    only: None,
                },
                chance: Chance::ALWAYS,
            },
            state: Arc::new(State {
                sink: Arc::new(sink),
                rng: Rng::new(Rng::random_seed()),
                seq: AtomicU64::new(0),
                start: Instant::now(),
            }),
        })
    }

    /// Records at most the first `bytes` of each body (clamped to [`MAX_BODY`]); `0`
    /// records no body, only its length.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.settings.limit = bytes.min(MAX_BODY);
        self
    }

    /// Records a `probability` of requests (in `[0, 1]`, clamped; NaN is 0).
    #[must_use]
    pub fn sample(mut self, probability: f64) -> Self {
        self.settings.chance = Chance::new(probability);
        self
    }

    /// Seeds the sampling, so the same requests are recorded in a rerun (in request order).
    #[must_use]
    pub fn seed(self, seed: u64) -> Self {
        self.state.rng.reseed(seed);
        self
    }

    /// Redacts header `name` too (its value is written as
    /// [`REDACTED`](crate::record::REDACTED)), besides the default four.
    #[must_use]
    pub fn redact(mut self, name: HeaderName) -> Self {
        if !self.settings.rules.redact.contains(&name) {
            self.settings.rules.redact.push(name);
        }
        self
    }

    /// Records only these headers (of requests and responses); redaction still applies.
    #[must_use]
    pub fn only_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.settings.rules.only = Some(names.into_iter().collect());
        self
    }

    /// A handle to flush the recording and read its counters.
    pub fn handle(&self) -> RecordHandle {
        RecordHandle {
            state: self.state.clone(),
        }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;
    fn layer(&self, inner: S) -> Record<S> {
        Record::from_parts(inner, Arc::new(self.settings.clone()), self.state.clone())
    }
}

/// Flushes a [`RecordLayer`]'s recording and reads its counters.
#[derive(Debug, Clone)]
pub struct RecordHandle {
    state: Arc<State>,
}

/// What a recorder did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecordStats {
    /// Requests chosen for recording.
    pub sampled: u64,
    /// Requests passed through unrecorded by sampling.
    pub unsampled: u64,
    /// Exchanges written.
    pub written: u64,
    /// Finished exchanges dropped because the writer's queue was full.
    pub dropped: u64,
    /// Exchanges the writer failed to write.
    pub write_errors: u64,
}

impl RecordHandle {
    /// Waits until every exchange finished before this call is written and the file
    /// flushed; the first write error since the last flush, if any.
    pub async fn flush(&self) -> io::Result<()> {
        self.state.sink.flush().await
    }

    /// The counters.
    pub fn stats(&self) -> RecordStats {
        let c = &self.state.sink.counters;
        RecordStats {
            sampled: c.sampled.load(Ordering::Relaxed),
            unsampled: c.unsampled.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
        }
    }
}
