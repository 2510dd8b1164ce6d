//! The relay: publishes pending outbox rows through a producer and marks them sent.

use super::table::{Outbox, row_to_request};
use crate::message::PublishRequest;
use futures_util::{FutureExt, StreamExt};
use palisade_core::config::{check_duration, check_range};
use palisade_core::{BoxError, ConfigError};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tower_service::Service;

/// Longest `last_error` text stored per row.
const MAX_ERROR_LEN: usize = 1000;

/// What one [`OutboxRelay::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayBatch {
    /// Rows locked by this batch.
    pub claimed: usize,
    /// Rows published and marked sent.
    pub published: usize,
    /// Rows whose publish failed (left pending with a later `next_attempt_at`).
    pub failed: usize,
}

/// Settings of an [`OutboxRelay`], checked by [`build`](OutboxRelayBuilder::build).
#[derive(Debug, Clone)]
pub struct OutboxRelayBuilder<P> {
    outbox: Outbox,
    producer: P,
    batch_size: u32,
    poll_interval: Duration,
    max_attempts: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    publish_timeout: Duration,
}

impl<P> OutboxRelayBuilder<P> {
    /// Longest wait for one publish (1 ms to 10 min; default 30 s): a publish still
    /// unconfirmed then counts as failed, so a hung broker cannot hold the batch's row
    /// locks forever.
    #[must_use]
    pub fn publish_timeout(mut self, d: Duration) -> Self {
        self.publish_timeout = d;
        self
    }

    /// Rows claimed and published per transaction (1 to 10 000; default 100).
    #[must_use]
    pub fn batch_size(mut self, n: u32) -> Self {
        self.batch_size = n;
        self
    }

    /// How often an idle relay looks for rows without a notification (10 ms to 1 h;
    /// default 5 s).
    #[must_use]
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Publish attempts per row before it is parked for an operator (1 to 1 000;
    /// default 10).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Delay before a failed row is tried again, doubled per attempt up to `max` (both
    /// 1 ms to 1 h, base ≤ max; default 1 s, 5 min). Also the relay's reconnect backoff.
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<OutboxRelay<P>, ConfigError> {
        check_range("relay.batch_size", self.batch_size, 1, 10_000)?;
        check_range("relay.max_attempts", self.max_attempts, 1, 1_000)?;
        let (ms, hour) = (Duration::from_millis(1), Duration::from_secs(3600));
        check_duration(
            "relay.poll_interval",
            self.poll_interval,
            Duration::from_millis(10),
            hour,
        )?;
        check_duration("relay.backoff.base", self.base_backoff, ms, hour)?;
        check_duration(
            "relay.publish_timeout",
            self.publish_timeout,
            ms,
            Duration::from_secs(600),
        )?;
        check_duration(
            "relay.backoff.max",
            self.max_backoff,
            self.base_backoff,
            hour,
        )?;
        let t = self.outbox.table();
        let claim_sql = format!(
            "SELECT id, message_id, subject, payload, header_names, header_values, attempts
             FROM {t}
             WHERE sent_at IS NULL AND attempts < $2 AND next_attempt_at <= now()
             ORDER BY id
             LIMIT $1
             FOR UPDATE SKIP LOCKED"
        );
        let sent_sql =
            format!("UPDATE {t} SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1)");
        let failed_sql = format!(
            "UPDATE {t} AS o SET attempts = o.attempts + 1, last_error = u.err,
                 next_attempt_at = now() + make_interval(secs => u.delay)
             FROM unnest($1::int8[], $2::text[], $3::float8[]) AS u(id, err, delay)
             WHERE o.id = u.id"
        );
        Ok(OutboxRelay {
            listen_sql: format!("LISTEN \"{}\"", self.outbox.channel()),
            outbox: self.outbox,
            producer: self.producer,
            batch_size: self.batch_size,
            poll_interval: self.poll_interval,
            max_attempts: self.max_attempts,
            base_backoff: self.base_backoff,
            max_backoff: self.max_backoff,
            publish_timeout: self.publish_timeout,
            sql: Arc::new(Sql {
                claim: claim_sql,
                sent: sent_sql,
                failed: failed_sql,
            }),
        })
    }
}

#[derive(Debug)]
struct Sql {
    claim: String,
    sent: String,
    failed: String,
}

/// Publishes pending outbox rows through a producer `Service<PublishRequest>` (any: a
/// [`JetStreamPublisher`](crate::producer::JetStreamPublisher), an
/// [`AmqpPublisher`](crate::producer::AmqpPublisher), either behind retry or a breaker).
///
/// Each batch is one transaction: claim up to `batch_size` due rows with
/// `FOR UPDATE SKIP LOCKED`, publish them concurrently with their stored message ids, mark
/// the published ones sent and the failed ones for a later attempt, commit. Run several
/// relays for throughput or availability; see the [module docs](crate::outbox).
#[derive(Debug, Clone)]
pub struct OutboxRelay<P> {
    outbox: Outbox,
    producer: P,
    batch_size: u32,
    poll_interval: Duration,
    max_attempts: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    publish_timeout: Duration,
    listen_sql: String,
    sql: Arc<Sql>,
}

impl<P> OutboxRelay<P> {
    /// A relay for `outbox` publishing through `producer`, to be configured and
    /// [`build`](OutboxRelayBuilder::build)-ed.
    pub fn builder(outbox: Outbox, producer: P) -> OutboxRelayBuilder<P> {
        OutboxRelayBuilder {
            outbox,
            producer,
            batch_size: 100,
            poll_interval: Duration::from_secs(5),
            max_attempts: 10,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            publish_timeout: Duration::from_secs(30),
        }
    }

    /// The outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    fn retry_delay(&self, attempts: u32) -> f64 {
        let exp = self.base_backoff.saturating_mul(1u32 << attempts.min(20));
        exp.min(self.max_backoff).as_secs_f64()
    }
}

async fn publish<P>(mut svc: P, req: PublishRequest) -> Result<(), BoxError>
where
    P: Service<PublishRequest>,
    P::Error: Into<BoxError>,
{
    poll_fn(|cx| svc.poll_ready(cx)).await.map_err(Into::into)?;
    svc.call(req).await.map(drop).map_err(Into::into)
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl<P> OutboxRelay<P>
where
    P: Service<PublishRequest> + Clone + Send + 'static,
    P::Error: Into<BoxError>,
    P::Future: Send,
{
    /// Claims, publishes and marks one batch in one transaction on `client`.
    ///
    /// If this future is dropped or the process dies before the commit, the transaction
    /// rolls back and every claimed row stays pending.
    pub async fn run_once(&self, client: &mut Client) -> Result<RelayBatch, tokio_postgres::Error> {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                &self.sql.claim,
                &[&i64::from(self.batch_size), &(self.max_attempts as i32)],
            )
            .await?;
        let calls = rows.iter().map(|row| {
            let (id, req) = row_to_request(row);
            let attempts: i32 = row.get(6);
            let svc = self.producer.clone();
            let limit = self.publish_timeout;
            async move {
                let result = tokio::time::timeout(limit, publish(svc, req))
                    .await
                    .unwrap_or_else(|_| Err(format!("publish timed out after {limit:?}").into()));
                (id, attempts, result)
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let mut sent = Vec::with_capacity(results.len());
        let (mut failed, mut errors, mut delays) = (Vec::new(), Vec::new(), Vec::new());
        for (id, attempts, result) in results {
            match result {
                Ok(()) => sent.push(id),
                Err(e) => {
                    tracing::warn!(target: "palisade::messaging", row = id, error = %e, "outbox publish failed");
                    failed.push(id);
                    errors.push(truncate(e.to_string()));
                    delays.push(self.retry_delay(attempts.max(0) as u32));
                }
            }
        }
        if !sent.is_empty() {
            tx.execute(&self.sql.sent, &[&sent]).await?;
        }
        if !failed.is_empty() {
            tx.execute(&self.sql.failed, &[&failed, &errors, &delays])
                .await?;
        }
        tx.commit().await?;
        Ok(RelayBatch {
            claimed: rows.len(),
            published: sent.len(),
            failed: failed.len(),
        })
    }

    /// Runs until `shutdown` completes: connects with `config`, `LISTEN`s on the outbox's
    /// channel, publishes batches back to back while they come full, then waits for a
    /// notification or `poll_interval`. A lost connection is re-established with the
    /// relay's backoff. Shutdown is checked between batches, so a batch in flight is
    /// finished and committed first.
    pub async fn run(self, config: tokio_postgres::Config, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut backoff = self.base_backoff;
        loop {
            match self.session(&config, shutdown.as_mut()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(target: "palisade::messaging", error = %e, ?backoff, "outbox relay lost its connection");
                }
            }
            tokio::select! {
                () = shutdown.as_mut() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    async fn session(
        &self,
        config: &tokio_postgres::Config,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), tokio_postgres::Error> {
        let (mut client, mut connection) = config.connect(NoTls).await?;
        let wake = Arc::new(Notify::new());
        let wake_driver = wake.clone();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake_driver.notify_one(),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        let _abort = AbortOnDrop(driver);
        client.batch_execute(&self.listen_sql).await?;
        loop {
            let batch = self.run_once(&mut client).await?;
            if batch.claimed == self.batch_size as usize {
                if shutdown.as_mut().now_or_never().is_some() {
                    return Ok(());
                }
                continue;
            }
            tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                () = wake.notified() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
