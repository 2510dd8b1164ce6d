//! The RabbitMQ producer.

use crate::error::{PublishError, PublishErrorKind};
use crate::message::{PublishReceipt, PublishRequest};
use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use std::task::{Context, Poll};
use tower_service::Service;

/// Publishes to a RabbitMQ exchange with publisher confirms.
///
/// [`AmqpPublisher::new`] puts the channel in confirm mode; each call publishes with
/// `mandatory` set and persistent delivery, and answers once the broker confirmed: a
/// negative confirm or a message no queue was bound to route is a
/// [`Rejected`](PublishErrorKind::Rejected) error, never a silent loss. The request's
/// subject is the routing key and its message id the `message-id` property.
///
/// ```no_run
/// # #[allow(dead_code)] async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use palisade_messaging::{PublishRequest, producer::AmqpPublisher};
/// use tower::ServiceExt;
///
/// let conn = lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default()).await?;
/// let publisher = AmqpPublisher::new(conn.create_channel().await?, "").await?; // default exchange
/// publisher.oneshot(PublishRequest::new("orders", "{}").with_message_id("order-42")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AmqpPublisher {
    channel: Channel,
    exchange: ShortString,
}

impl AmqpPublisher {
    /// A publisher to `exchange` (`""` is the default exchange, routing by queue name) on
    /// `channel`, which this call puts in confirm mode.
    pub async fn new(channel: Channel, exchange: &str) -> Result<Self, PublishError> {
        let exchange = ShortString::try_new(exchange).map_err(|e| {
            PublishError::with_source(PublishErrorKind::InvalidRequest, "exchange name", e)
        })?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| PublishError::with_source(unavailable(&e), "confirm.select", e))?;
        Ok(Self { channel, exchange })
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

fn unavailable(_: &lapin::Error) -> PublishErrorKind {
    PublishErrorKind::Unavailable
}

fn invalid(what: &'static str) -> impl FnOnce(lapin::types::ShortStringError) -> PublishError {
    move |e| PublishError::with_source(PublishErrorKind::InvalidRequest, what, e)
}

impl Service<PublishRequest> for AmqpPublisher {
    type Response = PublishReceipt;
    type Error = PublishError;
    type Future = BoxFuture<'static, Result<PublishReceipt, PublishError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: PublishRequest) -> Self::Future {
        let channel = self.channel.clone();
        let exchange = self.exchange.clone();
        Box::pin(async move {
            req.validate()
                .map_err(|m| PublishError::new(PublishErrorKind::InvalidRequest, m))?;
            let routing_key = ShortString::try_new(req.subject).map_err(invalid("subject"))?;
            let mut properties = BasicProperties::default().with_delivery_mode(2);
            if let Some(id) = req.message_id {
                properties =
                    properties.with_message_id(ShortString::try_new(id).map_err(invalid("id"))?);
            }
            if !req.headers.is_empty() {
                let mut table = FieldTable::default();
                for (name, value) in req.headers {
                    table.insert(
                        ShortString::try_new(name).map_err(invalid("header name"))?,
                        AMQPValue::LongString(LongString::from(value)),
                    );
                }
                properties = properties.with_headers(table);
            }
            let options = BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            };
            let confirm = channel
                .basic_publish(exchange, routing_key, options, &req.payload, properties)
                .await
                .map_err(|e| PublishError::with_source(unavailable(&e), "basic.publish", e))?
                .await
                .map_err(|e| PublishError::with_source(unavailable(&e), "confirm", e))?;
            match confirm {
                Confirmation::Ack(None) => Ok(PublishReceipt::new(None, false)),
                Confirmation::Ack(Some(_)) => Err(PublishError::new(
                    PublishErrorKind::Rejected,
                    "unroutable: no queue is bound for the routing key",
                )),
                Confirmation::Nack(_) => Err(PublishError::new(
                    PublishErrorKind::Rejected,
                    "the broker sent a negative confirm",
                )),
                Confirmation::NotRequested => Err(PublishError::new(
                    PublishErrorKind::Unavailable,
                    "the channel is not in confirm mode",
                )),
            }
        })
    }
}
