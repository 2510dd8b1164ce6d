//! The JetStream source: a durable pull consumer.

use super::delivery::Delivery;
use super::processor::{Settle, StreamProcessor};
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use palisade_core::BoxError;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;
use tower_service::Service;

struct JsMessage(jetstream::Message);

impl Settle for JsMessage {
    fn delivery(&self) -> Delivery {
        let m = &self.0;
        let info = m.info().ok();
        let mut headers = Vec::new();
        let mut message_id = None;
        if let Some(h) = &m.headers {
            for (name, values) in h.iter() {
                let Some(first) = values.first() else {
                    continue;
                };
                if AsRef::<str>::as_ref(name) == "Nats-Msg-Id" {
                    message_id = Some(first.as_str().to_owned());
                }
                headers.push((name.to_string(), first.as_str().to_owned()));
            }
        }
        let mut d = Delivery::new(m.subject.as_str(), m.payload.clone());
        d.headers = headers;
        d.message_id = message_id;
        d.attempt = info
            .as_ref()
            .map_or(1, |i| u32::try_from(i.delivered.max(1)).unwrap_or(u32::MAX));
        d.sequence = info.map(|i| i.stream_sequence);
        d
    }

    fn ack(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { self.0.ack().await })
    }

    fn retry(&self, delay: Duration) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { self.0.ack_with(AckKind::Nak(Some(delay))).await })
    }

    fn terminate(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { self.0.ack_with(AckKind::Term).await })
    }
}

impl<H> StreamProcessor<H>
where
    H: Service<Delivery> + Clone + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send,
{
    /// Processes `consumer` (a durable pull consumer with explicit acks; give it an
    /// `ack_wait` longer than your slowest handler and `max_deliver` of at least
    /// `max_attempts`) until `shutdown` completes; see [`StreamProcessor`].
    ///
    /// Fetches at most `max_in_flight` messages per pull. A broken connection is retried by
    /// the NATS client; errors of the pull stream back off and continue.
    pub async fn run_jetstream(
        &self,
        consumer: PullConsumer,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), BoxError> {
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.config_max_in_flight())
            .messages()
            .await?
            .map(|r| r.map(JsMessage).map_err(BoxError::from));
        self.drive(pin!(messages), pin!(shutdown)).await;
        Ok(())
    }
}
