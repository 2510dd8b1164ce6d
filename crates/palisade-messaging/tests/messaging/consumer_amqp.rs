//! The stream processor against the real RabbitMQ.

use crate::support;
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use palisade_core::event::Event;
use palisade_messaging::consumer::{
    ConsumerEvent, DEAD_LETTER_ATTEMPTS, DEAD_LETTER_REASON, Delivery, Dispatch, ProcessorConfig,
    StreamProcessor, TYPE_HEADER,
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

/// The connection is cut (a TCP proxy in the test, never the shared broker) while messages
/// are in flight: the processor reconnects with backoff, every message is handled, the queue
/// ends empty, and only messages whose ack was lost with the connection are handled twice.
#[tokio::test]
async fn reconnects_after_the_connection_is_cut_and_loses_nothing() {
    let Some(conn) = support::amqp().await else {
        return;
    };
    let queue = support::unique("palisade_reconnect");
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
    const N: usize = 60;
    for i in 0..N {
        publisher
            .clone()
            .oneshot(PublishRequest::new(queue.clone(), "x").with_message_id(format!("m{i}")))
            .await
            .unwrap();
    }

    let url = support::url("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let upstream: std::net::SocketAddr = {
        let rest = url.split("://").nth(1).unwrap();
        let host = rest.rsplit('@').next().unwrap().split('/').next().unwrap();
        tokio::net::lookup_host(host).await.unwrap().next().unwrap()
    };
    let proxy = crate::proxy::Proxy::start(upstream).await;
    let proxied = url.replacen(&upstream.to_string(), &proxy.addr.to_string(), 1);
    let proxied = if proxied == url {
        // AMQP_URL names the host another way: rebuild it on the proxy's address.
        format!("amqp://guest:guest@{}/%2f", proxy.addr)
    } else {
        proxied
    };

    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        service_fn(move |d: Delivery| {
            let seen = seen.clone();
            async move {
                // Slow enough that messages are in flight when the connection goes.
                tokio::time::sleep(Duration::from_millis(10)).await;
                *seen
                    .lock()
                    .unwrap()
                    .entry(d.message_id.clone().unwrap())
                    .or_default() += 1;
                Ok::<_, std::io::Error>(())
            }
        })
    };
    let config = ProcessorConfig::new(dlq.clone())
        .max_in_flight(4)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .shutdown_grace(Duration::from_secs(2));
    let events: Arc<Mutex<Vec<ConsumerEvent>>> = Arc::default();
    let processor = StreamProcessor::new(handler, publisher.clone(), &config)
        .unwrap()
        .name("orders")
        .on_event({
            let events = events.clone();
            move |e: &ConsumerEvent| events.lock().unwrap().push(e.clone())
        });
    let connects = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = {
        let p = processor.clone();
        let queue = queue.clone();
        let connects = connects.clone();
        tokio::spawn(async move {
            let connect = move || {
                connects.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let url = proxied.clone();
                async move {
                    lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
                }
            };
            p.run_amqp_reconnecting(connect, &queue, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let handled = |seen: &Arc<Mutex<HashMap<String, u32>>>| seen.lock().unwrap().len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while handled(&seen) < N / 3 {
        assert!(tokio::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut();
    // Down long enough for at least one failed connect.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore().await;
    while handled(&seen) < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost messages: {} of {N} handled",
            handled(&seen)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert!(
        connects.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "one connection, at least one failed attempt while cut, one after"
    );

    let seen = seen.lock().unwrap().clone();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    // Only messages in flight at the cut can come back: at most the prefetch (4) plus the
    // handlers running (4).
    assert!(twice.len() <= 8, "too many redeliveries: {twice:?}");
    assert!(
        seen.values().all(|n| *n <= 2),
        "handled more than twice: {seen:?}"
    );
    // Everything was acknowledged exactly once: nothing is left, nothing is unacked.
    let left = admin
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(left.message_count(), 0, "messages left in the queue");
    let stats = processor.stats();
    let total: u64 = stats.values().map(|c| c.handled).sum();
    assert_eq!(total, seen.values().map(|n| u64::from(*n)).sum::<u64>());
    // The same story as events: one `handled` per handler success, each with the processor's
    // name and the message type, and the lost connection.
    let events = events.lock().unwrap().clone();
    let handled_events = events.iter().filter(|e| e.name() == "handled").count();
    assert_eq!(handled_events as u64, total);
    assert!(
        events
            .iter()
            .filter(|e| e.name() == "handled")
            .all(|e| e.instance() == "orders" && e.target() == Some(queue.as_str()))
    );
    assert!(events.iter().any(|e| e.name() == "disconnected"));
    for q in [queue.clone(), dlq, format!("{queue}.retry")] {
        admin
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}
