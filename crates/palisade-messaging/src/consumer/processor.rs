//! The runtime: bounded concurrency, ack after success, backoff, dead letters, shutdown.

// The runtime is driven by the broker sources (features `nats`, `amqp`).
#![cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(dead_code))]

use super::config::ProcessorConfig;
use super::delivery::{Delivery, Permanent};
use super::events::ConsumerEvent;
use crate::message::PublishRequest;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream, StreamExt};
use palisade_core::event::{InstanceName, Listeners};
use palisade_core::{BoxError, ConfigError};
use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_service::Service;

/// Header of a dead letter: why it was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "Palisade-Dead-Letter-Reason";
/// Header of a dead letter: the subject it was consumed from.
pub const DEAD_LETTER_SUBJECT: &str = "Palisade-Original-Subject";
/// Header of a dead letter: how many deliveries failed.
pub const DEAD_LETTER_ATTEMPTS: &str = "Palisade-Attempts";

/// Longest reason kept in [`DEAD_LETTER_REASON`].
const MAX_REASON: usize = 500;

/// Counts of one message type, in [`StreamProcessor::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeCounts {
    /// Handled successfully and acknowledged.
    pub handled: u64,
    /// Failed and scheduled for redelivery.
    pub retried: u64,
    /// Sent to the dead-letter destination.
    pub dead_lettered: u64,
}

/// How a broker message is settled; one implementation per source.
pub(crate) trait Settle: Send + 'static {
    fn delivery(&self) -> Delivery;
    fn ack(&self) -> BoxFuture<'_, Result<(), BoxError>>;
    fn retry(&self, delay: Duration) -> BoxFuture<'_, Result<(), BoxError>>;
    /// Settles a message that was dead-lettered (never redelivered).
    fn terminate(&self) -> BoxFuture<'_, Result<(), BoxError>>;
}

type DeadLetter =
    Arc<dyn Fn(PublishRequest) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// Pulls messages from a broker and hands each to a handler `Service<Delivery>`:
///
/// - at most `max_in_flight` messages are fetched ahead and handled at once;
/// - a message is acknowledged only after its handler succeeded;
/// - a failure (an error or a panic) is redelivered after a backoff that doubles per
///   attempt; after `max_attempts` deliveries, or at once for a [`Permanent`] error, the
///   message is published to the dead-letter subject with the reason
///   ([`DEAD_LETTER_REASON`], [`DEAD_LETTER_SUBJECT`], [`DEAD_LETTER_ATTEMPTS`]) and settled
///   so it is never delivered again. A poison message therefore costs at most
///   `max_attempts` handler calls and never blocks the messages behind it;
/// - shutdown stops fetching, waits up to `shutdown_grace` for the handlers running, and
///   acknowledges nothing that did not finish (it is redelivered to the next consumer).
///
/// Delivery is at least once: make effects idempotent by the delivery's
/// [`message_id`](Delivery::message_id) (Palisade's idempotency inbox).
pub struct StreamProcessor<H> {
    handler: H,
    dead_letter: DeadLetter,
    config: Arc<ProcessorConfig>,
    stats: Arc<Mutex<HashMap<String, TypeCounts>>>,
    listeners: Listeners<ConsumerEvent>,
}

impl<H> fmt::Debug for StreamProcessor<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamProcessor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<H> Clone for StreamProcessor<H>
where
    H: Clone,
{
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            dead_letter: self.dead_letter.clone(),
            config: self.config.clone(),
            stats: self.stats.clone(),
            listeners: self.listeners.clone(),
        }
    }
}

fn sanitize(reason: &str) -> String {
    let mut s: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn panic_reason(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string payload".to_owned());
    format!("handler panicked: {msg}")
}

impl<H> StreamProcessor<H> {
    /// The processor's instance name, carried by its events (default `"stream_processor"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }

    /// Calls `f` with every [`ConsumerEvent`]: each message handled, retried or
    /// dead-lettered (with its type), and each lost connection.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&ConsumerEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }

    pub(crate) fn emit(&self, f: impl FnOnce(InstanceName) -> ConsumerEvent) {
        self.listeners.emit_named(f);
    }

    /// Counts per message type since the processor was made (shared by its clones).
    pub fn stats(&self) -> HashMap<String, TypeCounts> {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl<H> StreamProcessor<H>
where
    H: Service<Delivery> + Clone + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send,
{
    /// A processor handing messages to `handler` and dead letters to `dead_letter` (any
    /// producer, e.g. a [`JetStreamPublisher`](crate::producer::JetStreamPublisher)).
    pub fn new<D>(handler: H, dead_letter: D, config: &ProcessorConfig) -> Result<Self, ConfigError>
    where
        D: Service<PublishRequest> + Clone + Send + Sync + 'static,
        D::Error: Into<BoxError>,
        D::Future: Send,
    {
        config.validate()?;
        let dead_letter: DeadLetter = Arc::new(move |req| {
            let mut d = dead_letter.clone();
            Box::pin(async move {
                poll_fn(|cx| d.poll_ready(cx)).await.map_err(Into::into)?;
                d.call(req).await.map(drop).map_err(Into::into)
            })
        });
        Ok(Self {
            handler,
            dead_letter,
            config: Arc::new(config.clone()),
            stats: Arc::default(),
            listeners: Listeners::new().named("stream_processor"),
        })
    }

    pub(crate) fn config_max_in_flight(&self) -> usize {
        self.config.max_in_flight
    }

    /// The backoff before the `n`th retry (of a message, or of a connection).
    pub(crate) fn config_backoff(&self, n: u32) -> Duration {
        self.config.backoff_for(n)
    }

    fn count(&self, kind: &str, f: impl FnOnce(&mut TypeCounts)) {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match stats.get_mut(kind) {
            Some(c) => f(c),
            None => f(stats.entry(kind.to_owned()).or_default()),
        }
    }

    /// Handles one message and settles it.
    async fn process(self, message: impl Settle) {
        let delivery = message.delivery();
        let kind = delivery.message_type().to_owned();
        let attempt = delivery.attempt;
        let mut handler = self.handler.clone();
        let started = tokio::time::Instant::now();
        let outcome = AssertUnwindSafe(async {
            poll_fn(|cx| handler.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            handler
                .call(delivery.clone())
                .await
                .map(drop)
                .map_err(Into::into)
        })
        .catch_unwind()
        .await;
        let (reason, permanent) = match outcome {
            Ok(Ok(())) => {
                if let Err(e) = message.ack().await {
                    // Not acknowledged: it will be redelivered; the inbox absorbs the repeat.
                    tracing::warn!(target: "palisade::messaging", error = %e, "ack failed");
                }
                self.count(&kind, |c| c.handled += 1);
                self.emit(|instance| ConsumerEvent::Handled {
                    instance,
                    kind: kind.clone(),
                    duration: started.elapsed(),
                });
                return;
            }
            Ok(Err(e)) => (e.to_string(), e.is::<Permanent>()),
            Err(panic) => (panic_reason(&*panic), false),
        };
        if permanent || attempt >= self.config.max_attempts {
            let id = delivery
                .message_id
                .clone()
                .or_else(|| delivery.sequence.map(|s| format!("seq-{s}")));
            let mut dead = PublishRequest::new(
                self.config.dead_letter_subject.clone(),
                delivery.payload.clone(),
            )
            .with_header(DEAD_LETTER_REASON, sanitize(&reason))
            .with_header(DEAD_LETTER_SUBJECT, sanitize(&delivery.subject))
            .with_header(DEAD_LETTER_ATTEMPTS, attempt.to_string());
            if let Some(id) = id {
                dead = dead.with_message_id(format!("dlq-{}", sanitize(&id)));
            }
            if dead.validate().is_err() {
                dead.message_id = None;
            }
            match (self.dead_letter)(dead).await {
                Ok(()) => {
                    if let Err(e) = message.terminate().await {
                        tracing::warn!(target: "palisade::messaging", error = %e, "terminate failed");
                    }
                    tracing::warn!(target: "palisade::messaging", kind, attempt, reason, "message dead-lettered");
                    self.count(&kind, |c| c.dead_lettered += 1);
                    self.emit(|instance| ConsumerEvent::DeadLettered {
                        instance,
                        kind: kind.clone(),
                        attempt,
                        reason: if permanent {
                            "permanent"
                        } else {
                            "max_attempts"
                        },
                    });
                    return;
                }
                Err(e) => {
                    tracing::error!(target: "palisade::messaging", error = %e, "dead-letter publish failed; redelivering");
                }
            }
        }
        let delay = self.config.backoff_for(attempt);
        if let Err(e) = message.retry(delay).await {
            tracing::warn!(target: "palisade::messaging", error = %e, "nak failed");
        }
        self.count(&kind, |c| c.retried += 1);
        self.emit(|instance| ConsumerEvent::Retried {
            instance,
            kind,
            attempt,
            delay,
        });
    }

    /// The loop shared by every source: the next message (`None` when the source ended)
    /// is taken only once a permit for it is. Returns `true` when `shutdown` ended it,
    /// `false` when the source did.
    pub(crate) async fn drive<M>(
        &self,
        mut messages: Pin<&mut (impl Stream<Item = Result<M, BoxError>> + ?Sized)>,
        shutdown: Pin<&mut (impl Future<Output = ()> + ?Sized)>,
    ) -> bool
    where
        M: Settle,
    {
        let mut shutdown = shutdown;
        let mut stopped = true;
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight));
        let mut tasks = JoinSet::new();
        let mut errors = 0u32;
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                biased;
                () = shutdown.as_mut() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let message = tokio::select! {
                biased;
                () = shutdown.as_mut() => break,
                m = messages.next() => m,
            };
            match message {
                None => {
                    stopped = false;
                    break;
                }
                Some(Ok(m)) => {
                    errors = 0;
                    let this = self.clone();
                    tasks.spawn(async move {
                        this.process(m).await;
                        drop(permit);
                    });
                }
                Some(Err(e)) => {
                    errors = errors.saturating_add(1);
                    let delay = self.config.backoff_for(errors);
                    tracing::warn!(target: "palisade::messaging", error = %e, ?delay, "consumer error; backing off");
                    tokio::select! {
                        () = shutdown.as_mut() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(target: "palisade::messaging", running = tasks.len(), "shutdown grace over; abandoning unfinished messages unacknowledged");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        stopped
    }
}
