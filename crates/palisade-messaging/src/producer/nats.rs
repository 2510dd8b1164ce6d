//! The NATS JetStream producer.

use crate::error::{PublishError, PublishErrorKind};
use crate::message::{PublishReceipt, PublishRequest};
use async_nats::jetstream::{self, context::PublishErrorKind as NatsKind};
use futures_util::future::BoxFuture;
use std::task::{Context, Poll};
use tower_service::Service;

/// Publishes to NATS JetStream and waits for the stream's ack.
///
/// The request's message id goes out as `Nats-Msg-Id`: JetStream stores a message once per
/// id inside the stream's `duplicate_window` and answers a repeat with
/// [`PublishReceipt::duplicate`] set, so a publish retried after a lost ack is not stored
/// twice.
///
/// ```no_run
/// # #[allow(dead_code)] async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use palisade_messaging::{PublishRequest, producer::JetStreamPublisher};
/// use tower::ServiceExt;
///
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let publisher = JetStreamPublisher::new(client);
/// let receipt = publisher
///     .oneshot(PublishRequest::new("orders.created", "{}").with_message_id("order-42"))
///     .await?;
/// println!("stored at {:?}", receipt.sequence);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct JetStreamPublisher {
    context: jetstream::Context,
}

impl JetStreamPublisher {
    /// A publisher on `client`'s JetStream context.
    pub fn new(client: async_nats::Client) -> Self {
        Self {
            context: jetstream::new(client),
        }
    }

    /// A publisher on an existing context (a domain or API prefix, a custom ack timeout).
    pub fn from_context(context: jetstream::Context) -> Self {
        Self { context }
    }

    /// The JetStream context.
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }
}

fn map_error(err: &jetstream::context::PublishError) -> PublishErrorKind {
    match err.kind() {
        NatsKind::TimedOut | NatsKind::BrokenPipe | NatsKind::MaxAckPending => {
            PublishErrorKind::Unavailable
        }
        _ => PublishErrorKind::Rejected,
    }
}

impl Service<PublishRequest> for JetStreamPublisher {
    type Response = PublishReceipt;
    type Error = PublishError;
    type Future = BoxFuture<'static, Result<PublishReceipt, PublishError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: PublishRequest) -> Self::Future {
        let context = self.context.clone();
        Box::pin(async move {
            req.validate()
                .map_err(|m| PublishError::new(PublishErrorKind::InvalidRequest, m))?;
            let mut message = jetstream::message::PublishMessage::build().payload(req.payload);
            for (name, value) in req.headers {
                message = message.header(name, value);
            }
            if let Some(id) = &req.message_id {
                message = message.message_id(id);
            }
            let ack = context
                .send_publish(req.subject, message)
                .await
                .map_err(|e| PublishError::with_source(map_error(&e), "jetstream", e))?
                .await
                .map_err(|e| PublishError::with_source(map_error(&e), "jetstream ack", e))?;
            Ok(PublishReceipt::new(Some(ack.sequence), ack.duplicate))
        })
    }
}
