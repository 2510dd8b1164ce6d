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
    pub async fn run_amqp(
        &self,
        connection: &Connection,
        queue: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), BoxError> {
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
        let messages = consumer.map(|r| {
            r.map(|delivery| AmqpMessage {
                delivery,
                retry_queue: retry_queue.clone(),
                retry: retry.clone(),
            })
            .map_err(BoxError::from)
        });
        self.drive(pin!(messages), pin!(shutdown)).await;
        // Closing the consuming channel returns its unacknowledged (fetched, unstarted)
        // messages to the queue at once.
        let _ = consume.close(200, "shutdown".into()).await;
        Ok(())
    }
}
