//! JetStreamPublisher against the real NATS server.

use crate::support;
use async_nats::jetstream::{self, stream};
use palisade_messaging::{PublishErrorKind, PublishRequest, producer::JetStreamPublisher};
use std::time::Duration;
use tower::ServiceExt;

async fn with_stream() -> Option<(jetstream::Context, String, String)> {
    let client = support::nats().await?;
    let js = jetstream::new(client);
    let name = support::unique("palisade_pub");
    let subject = format!("{name}.events");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        duplicate_window: Duration::from_secs(60),
        ..Default::default()
    })
    .await
    .expect("create stream");
    Some((js, name, subject))
}

#[tokio::test]
async fn publishes_with_ack_and_dedupes_by_message_id() {
    let Some((js, name, subject)) = with_stream().await else {
        return;
    };
    let publisher = JetStreamPublisher::from_context(js.clone());
    let req = PublishRequest::new(subject.clone(), "hello")
        .with_message_id("m-1")
        .with_header("Content-Type", "text/plain");
    let first = publisher.clone().oneshot(req.clone()).await.unwrap();
    assert_eq!(first.sequence, Some(1));
    assert!(!first.duplicate);
    let again = publisher.clone().oneshot(req).await.unwrap();
    assert!(again.duplicate, "same Nats-Msg-Id inside the window");
    assert_eq!(again.sequence, Some(1));
    let other = publisher
        .clone()
        .oneshot(PublishRequest::new(subject.clone(), "b").with_message_id("m-2"))
        .await
        .unwrap();
    assert_eq!(other.sequence, Some(2));

    let mut s = js.get_stream(&name).await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 2);
    let stored = s.get_raw_message(1).await.unwrap();
    assert_eq!(&stored.payload[..], b"hello");
    let headers = stored.headers;
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
        Some("m-1".to_owned())
    );
    assert_eq!(
        headers.get("Content-Type").map(|v| v.as_str().to_owned()),
        Some("text/plain".to_owned())
    );
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn no_stream_and_bad_input_are_typed_errors() {
    let Some((js, name, _)) = with_stream().await else {
        return;
    };
    let publisher = JetStreamPublisher::from_context(js.clone());
    let err = publisher
        .clone()
        .oneshot(PublishRequest::new(format!("{name}_nostream.x"), "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::Rejected, "{err}");
    assert!(!err.is_retryable());
    for bad in [
        PublishRequest::new("has space", "x"),
        PublishRequest::new(format!("{name}.e"), "x").with_header("bad:name", "v"),
        PublishRequest::new(format!("{name}.e"), "x").with_header("n", "a\r\nb"),
    ] {
        let err = publisher.clone().oneshot(bad).await.unwrap_err();
        assert_eq!(err.kind(), PublishErrorKind::InvalidRequest, "{err}");
    }
    let s = js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(s, 0, "nothing invalid was sent");
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_broker_that_goes_away_is_unavailable_then_recovers() {
    use crate::proxy::Proxy;
    let Some((js, name, subject)) = with_stream().await else {
        return;
    };
    let url = support::url("NATS_URL", "nats://127.0.0.1:4222");
    let host = url.trim_start_matches("nats://");
    let upstream = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let proxy = Proxy::start(upstream).await;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(format!("nats://{}", proxy.addr))
        .await
        .unwrap();
    let publisher = JetStreamPublisher::from_context(
        jetstream::context::ContextBuilder::new()
            .timeout(Duration::from_millis(500))
            .build(client),
    );
    let ok = publisher
        .clone()
        .oneshot(PublishRequest::new(subject.clone(), "before").with_message_id("a"))
        .await
        .unwrap();
    assert_eq!(ok.sequence, Some(1));

    proxy.cut();
    let err = publisher
        .clone()
        .oneshot(PublishRequest::new(subject.clone(), "during").with_message_id("b"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());

    proxy.restore().await;
    // The client reconnects on its own; the same message id is retried until it lands.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let receipt = loop {
        match publisher
            .clone()
            .oneshot(PublishRequest::new(subject.clone(), "during").with_message_id("b"))
            .await
        {
            Ok(r) => break r,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never recovered: {e}"
                );
            }
        }
    };
    // "b" may have been stored by a buffered publish on reconnect: then this is a duplicate,
    // never a second copy.
    let stored = js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(stored, 2, "a and b once each (receipt {receipt:?})");
    js.delete_stream(&name).await.unwrap();
}
