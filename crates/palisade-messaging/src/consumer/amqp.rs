//! The RabbitMQ source: a queue consumed with manual acks, retries through a delay queue.

use super::delivery::Delivery;
use super::processor::{Settle, StreamProcessor};
use crate::producer::AmqpPublisher;
use crate::{PublishError, PublishErrorKind};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use palisade_core::BoxError;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;
use tower_service::Service;

/// Header carrying the delivery attempt of a message republished for a retry.
pub const ATTEMPT_HEADER: &str = "x-palisade-attempt";

fn attempt_of(props: &BasicProperties) -> u32 {
    let value = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned());
    let n: i64 = match value {
        Some(AMQPValue::LongLongInt(n)) => n,
        Some(AMQPValue::LongInt(n)) => n.into(),
        Some(AMQPValue::LongUInt(n)) => n.into(),
        Some(AMQPValue::ShortInt(n)) => n.into(),
        Some(AMQPValue::ShortUInt(n)) => n.into(),
        _ => 1,
    };
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

fn header_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        _ => None,
    }
}

struct AmqpMessage {
    delivery: lapin::message::Delivery,
    /// The delay queue (dead-lettering into `queue`).
    retry_queue: ShortString,
    /// A confirm-mode channel for republishing retries.
    retry: Channel,
}

impl Settle for AmqpMessage {
    fn delivery(&self) -> Delivery {
        let d = &self.delivery;
        let mut out = Delivery::new(d.routing_key.as_str(), d.data.clone());
        out.message_id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned());
        out.attempt = attempt_of(&d.properties);
        if let Some(h) = d.properties.headers() {
            out.headers = h
                .inner()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), header_text(v)?)))
                .collect();
        }
        out
    }

    fn ack(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async {
            self.delivery.acker.ack(BasicAckOptions::default()).await?;
            Ok(())
        })
    }

    /// Republishes a copy with the next attempt number into the delay queue (expiring
    /// after `delay` into the main queue), confirmed, then acks the original. A crash in
    /// between redelivers the original: nothing is lost.
    fn retry(&self, delay: Duration) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            let d = &self.delivery;
            let mut headers = d.properties.headers().clone().unwrap_or_default();
            headers.insert(
                ATTEMPT_HEADER.into(),
                AMQPValue::LongLongInt(i64::from(attempt_of(&d.properties)) + 1),
            );
            // The original routing key travels as a header: the copy is routed by queue.
            headers.insert(
                "x-palisade-routing-key".into(),
                AMQPValue::LongString(LongString::from(d.routing_key.as_str())),
            );
            let ms = delay.as_millis().max(1).to_string();
            let props = d
                .properties
                .clone()
                .with_headers(headers)
                .with_expiration(ShortString::try_new(ms)?);
            let confirm = self
                .retry
                .basic_publish(
                    ShortString::from(""),
                    self.retry_queue.clone(),
                    BasicPublishOptions::default(),
                    &d.data,
                    props,
                )
                .await?
                .await?;
            if !matches!(confirm, Confirmation::Ack(None)) {
                return Err(PublishError::new(
                    PublishErrorKind::Rejected,
                    format!("retry copy not confirmed into `{}`", self.retry_queue),
                )
                .into());
            }
            self.delivery.acker.ack(BasicAckOptions::default()).await?;
            Ok(())
        })
    }

    fn terminate(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        self.ack()
    }
}

impl<H> StreamProcessor<H>
where
    H: Service<Delivery> + Clone + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send,
{
    /// Processes RabbitMQ `queue` (which must exist) on `connection` until `shutdown`
    /// completes; see [`StreamProcessor`].
    ///
    /// Consumes with manual acks and a prefetch of `max_in_flight`. RabbitMQ counts no
    /// attempts on classic queues, so a retry is a confirmed copy, with
    /// [`ATTEMPT_HEADER`] incremented, published into the delay queue `<queue>.retry`
    /// (declared here, durable, dead-lettering expired messages back into `queue`) with the
    /// backoff as its per-message TTL, then the original is acked. Delays of different
    /// lengths in that queue expire in order (RabbitMQ expires at the head only), so a
    /// short delay may wait behind a longer one: retries can come late, never be lost.
    ///
    /// Returns when `shutdown` completes, or when the connection is lost (the handlers
    /// running are waited for, up to `shutdown_grace`; their messages are redelivered by
    /// RabbitMQ to the next consumer). To reconnect by itself, use
    /// [`run_amqp_reconnecting`](Self::run_amqp_reconnecting).
    pub async fn run_amqp(
        &self,
        connection: &Connection,
        queue: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), BoxError> {
        self.amqp_session(connection, queue, pin!(shutdown))
            .await
            .map(drop)
    }

    /// Processes RabbitMQ `queue` as [`run_amqp`](Self::run_amqp) does, on connections
    /// made by `connect`, until `shutdown` completes: when the connection is lost or cannot
    /// be made, `connect` is called again after the processor's redelivery backoff
    /// ([`ProcessorConfig::backoff`](crate::consumer::ProcessorConfig::backoff), doubling
    /// per failure in a row).
    ///
    /// Nothing is lost and nothing is acknowledged twice across a reconnection: a message
    /// is acknowledged on the channel it was delivered on, after its handler succeeded;
    /// one whose acknowledgement did not reach RabbitMQ is redelivered on the new
    /// connection (wrap the handler in the idempotency inbox so its effect runs once).
    ///
    /// ```no_run
    /// # use palisade_messaging::consumer::{Delivery, ProcessorConfig, StreamProcessor};
    /// # use palisade_messaging::producer::AmqpPublisher;
    /// # #[allow(dead_code)]
    /// # async fn run(dead_letters: AmqpPublisher) -> Result<(), palisade_core::BoxError> {
    /// let handler = tower::service_fn(|_d: Delivery| async { Ok::<_, std::io::Error>(()) });
    /// let processor = StreamProcessor::new(handler, dead_letters, &ProcessorConfig::new("orders.dlq"))?;
    /// let connect = || {
    ///     lapin::Connection::connect("amqp://127.0.0.1:5672/%2f", lapin::ConnectionProperties::default())
    /// };
    /// processor
    ///     .run_amqp_reconnecting(connect, "orders", std::future::pending::<()>())
    ///     .await
    /// # }
    /// ```
    pub async fn run_amqp_reconnecting<C, F>(
        &self,
        mut connect: C,
        queue: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), BoxError>
    where
        C: FnMut() -> F,
        F: Future<Output = Result<Connection, lapin::Error>>,
    {
        let mut shutdown = pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let connection = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                c = connect() => c,
            };
            match connection {
                Ok(connection) => {
                    let ended = self
                        .amqp_session(&connection, queue, shutdown.as_mut())
                        .await;
                    match ended {
                        Ok(Session::Stopped) => {
                            let _ = connection.close(200, "shutdown".into()).await;
                            return Ok(());
                        }
                        Ok(Session::Lost { delivered }) => {
                            if delivered {
                                failures = 0;
                            }
                            tracing::warn!(target: "palisade::messaging", queue, "RabbitMQ connection lost; reconnecting");
                        }
                        Err(e) => {
                            tracing::warn!(target: "palisade::messaging", queue, error = %e, "RabbitMQ session failed; reconnecting");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "palisade::messaging", queue, error = %e, "RabbitMQ connect failed; retrying");
                }
            }
            self.emit(|instance| super::events::ConsumerEvent::Disconnected { instance });
            failures = failures.saturating_add(1);
            let delay = self.config_backoff(failures);
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One consuming session on `connection`: until `shutdown` or the connection's end.
    async fn amqp_session(
        &self,
        connection: &Connection,
        queue: &str,
        shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + ?Sized)>,
    ) -> Result<Session, BoxError> {
        let queue_name = ShortString::try_new(queue)?;
        let retry_queue = ShortString::try_new(format!("{queue}.retry"))?;
        let consume = connection.create_channel().await?;
        let retry = AmqpPublisher::new(connection.create_channel().await?, "")
            .await?
            .channel()
            .clone();
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from(queue)),
        );
        consume
            .queue_declare(
                retry_queue.clone(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await?;
        let prefetch = u16::try_from(self.config_max_in_flight()).unwrap_or(u16::MAX);
        consume
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = consume
            .basic_consume(
                queue_name.clone(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let delivered = std::sync::atomic::AtomicBool::new(false);
        // A consumer error means the channel or the connection is gone: the session ends
        // there, and the caller reconnects (or returns).
        let messages = consumer
            .take_while(|r| {
                if let Err(e) = r {
                    tracing::warn!(target: "palisade::messaging", error = %e, "RabbitMQ consumer failed");
                }
                std::future::ready(r.is_ok())
            })
            .map(|r| {
                delivered.store(true, std::sync::atomic::Ordering::Relaxed);
                r.map(|delivery| AmqpMessage {
                    delivery,
                    retry_queue: retry_queue.clone(),
                    retry: retry.clone(),
                })
                .map_err(BoxError::from)
            });
        let stopped = self.drive(pin!(messages), shutdown).await;
        // Closing the consuming channel returns its unacknowledged (fetched, unstarted)
        // messages to the queue at once.
        let _ = consume.close(200, "shutdown".into()).await;
        Ok(if stopped {
            Session::Stopped
        } else {
            Session::Lost {
                delivered: delivered.load(std::sync::atomic::Ordering::Relaxed),
            }
        })
    }
}

/// How a consuming session ended.
enum Session {
    /// `shutdown` completed.
    Stopped,
    /// The consumer ended: the channel or connection is gone.
    Lost { delivered: bool },
}
