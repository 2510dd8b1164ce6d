//! The stream processor against the real NATS JetStream.

use crate::support;
use async_nats::jetstream::{self, consumer::pull, stream};
use palisade_messaging::consumer::{
    DEAD_LETTER_ATTEMPTS, DEAD_LETTER_REASON, DEAD_LETTER_SUBJECT, Delivery, Dispatch, Permanent,
    ProcessorConfig, StreamProcessor, TYPE_HEADER,
};
use palisade_messaging::{PublishRequest, producer::JetStreamPublisher};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{ServiceExt, service_fn};

struct Setup {
    js: jetstream::Context,
    name: String,
    consumer: jetstream::consumer::PullConsumer,
    publisher: JetStreamPublisher,
}

impl Setup {
    async fn new(ack_wait: Duration) -> Option<Self> {
        let client = support::nats().await?;
        let js = jetstream::new(client);
        let name = support::unique("palisade_proc");
        let s = js
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{name}.>")],
                ..Default::default()
            })
            .await
            .unwrap();
        let consumer = s
            .create_consumer(pull::Config {
                durable_name: Some("worker".into()),
                // Dead letters go to `<name>.dlq` in the same stream: not this consumer's work.
                filter_subject: format!("{name}.events"),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                ..Default::default()
            })
            .await
            .unwrap();
        let publisher = JetStreamPublisher::from_context(js.clone());
        Some(Self {
            js,
            name,
            consumer,
            publisher,
        })
    }

    async fn publish(&self, kind: &str, id: &str, payload: &str) {
        self.publisher
            .clone()
            .oneshot(
                PublishRequest::new(format!("{}.events", self.name), payload.to_owned())
                    .with_message_id(id)
                    .with_header(TYPE_HEADER, kind),
            )
            .await
            .unwrap();
    }

    async fn consumer_state(&self) -> (u64, usize) {
        let info = self
            .js
            .get_stream(&self.name)
            .await
            .unwrap()
            .consumer_info("worker")
            .await
            .unwrap()
            .clone();
        (info.num_pending, info.num_ack_pending)
    }

    async fn cleanup(self) {
        self.js.delete_stream(&self.name).await.unwrap();
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dispatches_retries_and_dead_letters_poison_without_blocking() {
    let Some(setup) = Setup::new(Duration::from_secs(30)).await else {
        return;
    };
    let calls: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let record = |kind: &'static str, calls: Arc<Mutex<HashMap<String, Vec<u32>>>>| {
        move |d: &Delivery| {
            calls
                .lock()
                .unwrap()
                .entry(format!("{kind}:{}", d.message_id.clone().unwrap()))
                .or_default()
                .push(d.attempt);
        }
    };
    let (ok, flaky, poison, panics) = (
        record("ok", calls.clone()),
        record("flaky", calls.clone()),
        record("poison", calls.clone()),
        record("panic", calls.clone()),
    );
    let handler = Dispatch::new()
        .route(
            "ok",
            service_fn(move |d: Delivery| {
                ok(&d);
                async { Ok::<_, std::io::Error>(()) }
            }),
        )
        .route(
            "flaky",
            service_fn(move |d: Delivery| {
                flaky(&d);
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
                poison(&d);
                async { Err::<(), _>(std::io::Error::other("cannot handle this")) }
            }),
        )
        .route(
            "panic",
            service_fn(move |d: Delivery| {
                panics(&d);
                async move {
                    assert!(d.attempt == 0, "handler bug");
                    Ok::<_, std::io::Error>(())
                }
            }),
        )
        .route(
            "undecodable",
            service_fn(|_d: Delivery| async { Err::<(), _>(Permanent("bad json".into())) }),
        );
    let config = ProcessorConfig::new(format!("{}.dlq", setup.name))
        .max_in_flight(4)
        .max_attempts(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(200));
    let processor = StreamProcessor::new(handler, setup.publisher.clone(), &config).unwrap();

    setup.publish("poison", "p1", "x").await;
    setup.publish("panic", "k1", "x").await;
    setup.publish("undecodable", "u1", "{").await;
    setup.publish("unknown", "n1", "x").await;
    setup.publish("flaky", "f1", "x").await;
    for i in 0..20 {
        setup.publish("ok", &format!("o{i}"), "x").await;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let p = processor.clone();
    let consumer = setup.consumer.clone();
    let run = tokio::spawn(async move {
        p.run_jetstream(consumer, async {
            let _ = stop_rx.await;
        })
        .await
    });
    wait_until("all messages settled", || {
        let s = processor.stats();
        let get = |k: &str| s.get(k).copied().unwrap_or_default();
        get("ok").handled == 20
            && get("flaky").handled == 1
            && get("poison").dead_lettered == 1
            && get("panic").dead_lettered == 1
            && get("undecodable").dead_lettered == 1
            && get("unknown").dead_lettered == 1
    })
    .await;
    let s = processor.stats();
    assert_eq!(s["flaky"].retried, 2);
    assert_eq!(s["poison"].retried, 2);
    assert_eq!(s["undecodable"].retried, 0, "Permanent: no retries");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls["flaky:f1"], vec![1, 2, 3]);
    assert_eq!(
        calls["poison:p1"],
        vec![1, 2, 3],
        "exactly max_attempts calls"
    );
    assert_eq!(calls["panic:k1"], vec![1, 2, 3]);
    for i in 0..20 {
        assert_eq!(
            calls[&format!("ok:o{i}")],
            vec![1],
            "acked once, never redelivered"
        );
    }
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();

    // The dead letters, with their reasons, in the stream under `.dlq`.
    let mut dlq = setup
        .js
        .get_stream(&setup.name)
        .await
        .unwrap()
        .create_consumer(pull::Config {
            filter_subject: format!("{}.dlq", setup.name),
            ..Default::default()
        })
        .await
        .unwrap()
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut reasons = HashMap::new();
    while let Some(Ok(m)) = futures_util::StreamExt::next(&mut dlq).await {
        let h = m.headers.clone().unwrap();
        let get = |n: &str| h.get(n).map(|v| v.as_str().to_owned()).unwrap();
        assert_eq!(get(DEAD_LETTER_SUBJECT), format!("{}.events", setup.name));
        reasons.insert(
            get("Nats-Msg-Id"),
            (get(DEAD_LETTER_REASON), get(DEAD_LETTER_ATTEMPTS)),
        );
    }
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons["dlq-p1"].0.contains("cannot handle this"));
    assert_eq!(reasons["dlq-p1"].1, "3");
    assert!(
        reasons["dlq-k1"]
            .0
            .contains("handler panicked: handler bug")
    );
    assert_eq!(reasons["dlq-u1"], ("bad json".to_owned(), "1".to_owned()));
    assert!(
        reasons["dlq-n1"]
            .0
            .contains("no handler for message type `unknown`")
    );
    assert_eq!(setup.consumer_state().await, (0, 0), "everything settled");
    setup.cleanup().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_acks_nothing_else() {
    let Some(setup) = Setup::new(Duration::from_secs(2)).await else {
        return;
    };
    for i in 0..6 {
        setup.publish("slow", &format!("s{i}"), "x").await;
    }
    let started = Arc::new(AtomicUsize::new(0));
    let finished: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let handler = {
        let (started, finished) = (started.clone(), finished.clone());
        service_fn(move |d: Delivery| {
            started.fetch_add(1, Ordering::SeqCst);
            let finished = finished.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                finished
                    .lock()
                    .unwrap()
                    .push((d.message_id.clone().unwrap(), d.attempt));
                Ok::<_, std::io::Error>(())
            }
        })
    };
    let config = ProcessorConfig::new(format!("{}.dlq", setup.name)).max_in_flight(2);
    let processor =
        StreamProcessor::new(handler.clone(), setup.publisher.clone(), &config).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let p = processor.clone();
    let consumer = setup.consumer.clone();
    let run = tokio::spawn(async move {
        p.run_jetstream(consumer, async {
            let _ = stop_rx.await;
        })
        .await
    });
    wait_until("two handlers running", || {
        started.load(Ordering::SeqCst) == 2
    })
    .await;
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "nothing new started after shutdown"
    );
    assert_eq!(
        finished.lock().unwrap().len(),
        2,
        "in-flight messages finished"
    );
    assert_eq!(processor.stats()["slow"].handled, 2);

    // A new processor gets the other four (fetched-but-unstarted ones after ack_wait), and
    // never the two that were acknowledged.
    let processor = StreamProcessor::new(handler, setup.publisher.clone(), &config).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let p = processor.clone();
    let consumer = setup.consumer.clone();
    let run = tokio::spawn(async move {
        p.run_jetstream(consumer, async {
            let _ = stop_rx.await;
        })
        .await
    });
    wait_until("the rest handled", || finished.lock().unwrap().len() >= 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    let mut ids: Vec<String> = finished
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..6).map(|i| format!("s{i}")).collect::<Vec<_>>(),
        "each exactly once"
    );
    assert_eq!(setup.consumer_state().await, (0, 0));
    setup.cleanup().await;
}

#[test]
fn processor_config_is_checked() {
    let p = JetStreamPublisherless;
    let h = service_fn(|_d: Delivery| async { Ok::<_, std::io::Error>(()) });
    for (cfg, field) in [
        (
            ProcessorConfig::new("dlq").max_in_flight(0),
            "processor.max_in_flight",
        ),
        (
            ProcessorConfig::new("dlq").max_attempts(0),
            "processor.max_attempts",
        ),
        (
            ProcessorConfig::new("dlq").backoff(Duration::from_secs(2), Duration::from_secs(1)),
            "processor.backoff.max",
        ),
        (
            ProcessorConfig::new("has space"),
            "processor.dead_letter_subject",
        ),
    ] {
        let e = StreamProcessor::new(h, p.clone(), &cfg).unwrap_err();
        assert_eq!(e.field(), field);
    }
}

/// A dead-letter producer that accepts everything (config checks need no broker).
#[derive(Clone)]
struct JetStreamPublisherless;

impl tower::Service<PublishRequest> for JetStreamPublisherless {
    type Response = ();
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<(), std::io::Error>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: PublishRequest) -> Self::Future {
        std::future::ready(Ok(()))
    }
}
