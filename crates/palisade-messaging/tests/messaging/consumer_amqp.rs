//! The stream processor against the real RabbitMQ.

use crate::support;
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use palisade_messaging::consumer::{
    DEAD_LETTER_ATTEMPTS, DEAD_LETTER_REASON, Delivery, Dispatch, ProcessorConfig, StreamProcessor,
    TYPE_HEADER,
};
use palisade_messaging::{PublishRequest, producer::AmqpPublisher};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{ServiceExt, service_fn};

#[tokio::test]
async fn retries_through_the_delay_queue_and_dead_letters_with_the_reason() {
    let Some(conn) = support::amqp().await else {
        return;
    };
    let queue = support::unique("palisade_proc");
    let dlq = format!("{queue}.dlq");
    let admin = conn.create_channel().await.unwrap();
    for q in [&queue, &dlq] {
        admin
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let publisher = AmqpPublisher::new(conn.create_channel().await.unwrap(), "")
        .await
        .unwrap();
    let publish = |kind: &str, id: &str| {
        publisher.clone().oneshot(
            PublishRequest::new(queue.clone(), "x")
                .with_message_id(id)
                .with_header(TYPE_HEADER, kind),
        )
    };
    for i in 0..10 {
        publish("ok", &format!("o{i}")).await.unwrap();
    }
    publish("flaky", "f1").await.unwrap();
    publish("poison", "p1").await.unwrap();

    let calls: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let record = {
        let calls = calls.clone();
        move |d: &Delivery| {
            calls
                .lock()
                .unwrap()
                .entry(d.message_id.clone().unwrap())
                .or_default()
                .push(d.attempt);
        }
    };
    let (r1, r2, r3) = (record.clone(), record.clone(), record);
    let handler = Dispatch::new()
        .route(
            "ok",
            service_fn(move |d: Delivery| {
                r1(&d);
                async { Ok::<_, std::io::Error>(()) }
            }),
        )
        .route(
            "flaky",
            service_fn(move |d: Delivery| {
                r2(&d);
                async move {
                    if d.attempt < 3 {
                        Err(std::io::Error::other("not yet"))
                    } else {
                        Ok(())
                    }
                }
            }),
        )
        .route(
            "poison",
            service_fn(move |d: Delivery| {
                r3(&d);
                async { Err::<(), _>(std::io::Error::other("cannot handle this")) }
            }),
        );
    let config = ProcessorConfig::new(dlq.clone())
        .max_in_flight(4)
        .max_attempts(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(100));
    let processor = StreamProcessor::new(handler, publisher.clone(), &config).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = {
        let p = processor.clone();
        let conn = support::amqp().await.unwrap();
        let queue = queue.clone();
        tokio::spawn(async move {
            p.run_amqp(&conn, &queue, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = processor.stats();
        let get = |k: &str| s.get(k).copied().unwrap_or_default();
        if get("ok").handled == 10 && get("flaky").handled == 1 && get("poison").dead_lettered == 1
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not settled: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls["f1"], vec![1, 2, 3]);
    assert_eq!(calls["p1"], vec![1, 2, 3]);
    assert!((0..10).all(|i| calls[&format!("o{i}")] == vec![1]));
    assert_eq!(processor.stats()["poison"].retried, 2);

    let dead = admin
        .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("one dead letter");
    let headers = dead.delivery.properties.headers().clone().unwrap();
    let text = |name: &str| match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("{name}: {other:?}"),
    };
    assert!(text(DEAD_LETTER_REASON).contains("cannot handle this"));
    assert_eq!(text(DEAD_LETTER_ATTEMPTS), "3");
    assert_eq!(
        dead.delivery
            .properties
            .message_id()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some("dlq-p1")
    );
    for q in [queue.clone(), dlq, format!("{queue}.retry")] {
        admin
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}
