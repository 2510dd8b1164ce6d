//! AmqpPublisher against the real RabbitMQ.

use crate::support;
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use palisade_messaging::{PublishErrorKind, PublishRequest, producer::AmqpPublisher};
use tower::ServiceExt;

#[tokio::test]
async fn publishes_with_confirms_and_message_id() {
    let Some(conn) = support::amqp().await else {
        return;
    };
    let channel = conn.create_channel().await.unwrap();
    let queue = support::unique("palisade_pub");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let publisher = AmqpPublisher::new(conn.create_channel().await.unwrap(), "")
        .await
        .unwrap();
    let receipt = publisher
        .clone()
        .oneshot(
            PublishRequest::new(queue.clone(), "hello")
                .with_message_id("m-1")
                .with_header("x-kind", "greeting"),
        )
        .await
        .unwrap();
    assert_eq!(receipt.sequence, None);
    let got = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("one message in the queue");
    assert_eq!(got.delivery.data, b"hello");
    let props = &got.delivery.properties;
    assert_eq!(
        props
            .message_id()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some("m-1")
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    let headers = props.headers().as_ref().expect("headers");
    assert!(matches!(
        headers.inner().get("x-kind"),
        Some(AMQPValue::LongString(v)) if v.as_bytes() == b"greeting"
    ));

    // Unroutable: mandatory publish to a queue that does not exist comes back as Rejected.
    let err = publisher
        .clone()
        .oneshot(PublishRequest::new(format!("{queue}_missing"), "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::Rejected, "{err}");

    // A message id over AMQP's 255-byte short string is refused before sending, no panic.
    let err = publisher
        .clone()
        .oneshot(PublishRequest::new(queue.clone(), "x").with_message_id("i".repeat(300)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::InvalidRequest);

    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}
