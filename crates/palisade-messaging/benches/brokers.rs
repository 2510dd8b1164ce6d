//! Producer and relay figures against the real brokers (not criterion: p99 needs every
//! sample, and a broker round trip is milliseconds, not nanoseconds).
//!
//! ```text
//! cargo bench -p palisade-messaging --all-features --bench brokers
//! ```
//!
//! Prints, per producer, bare and behind the default policy (timeout → retry → breaker →
//! bulkhead → rate limit, each in its any-request mode), twice each, alternately:
//! sequential publishes (one at a time, confirm awaited) with p50/p99
//! latency, and messages/s with 64 publishes in flight; the stream processor's messages/s
//! (no-op handler, ack per message); then outbox relay rows/s with 1 and 2 relays publishing
//! to JetStream. Uses its own stream, queue and schemas, deleted after.

use async_nats::jetstream::{self, consumer::pull, stream};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use palisade_breaker::CircuitBreakerLayer;
use palisade_bulkhead::BulkheadLayer;
use palisade_core::BoxError;
use palisade_core::classify::{DefaultClassifier, Outcome, classify_fn};
use palisade_core::key::{KeyError, key_fn};
use palisade_messaging::consumer::{Delivery, ProcessorConfig, StreamProcessor};
use palisade_messaging::outbox::{Outbox, OutboxMessage, OutboxRelay};
use palisade_messaging::producer::{AmqpPublisher, JetStreamPublisher};
use palisade_messaging::{PublishError, PublishReceipt, PublishRequest};
use palisade_ratelimit::{Quota, RateLimitLayer};
use palisade_retry::{Decision, RetryLayer, RetryReason, predicate_fn};
use palisade_timeout::TimeoutLayer;
use std::time::{Duration, Instant};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const SEQUENTIAL: usize = 2_000;
const CONCURRENT: usize = 20_000;
const IN_FLIGHT: usize = 64;
const ROWS: usize = 10_000;

fn env(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn suffix() -> String {
    format!("{}", std::process::id())
}

async fn measure<P>(name: &str, publisher: P, subject: &str)
where
    P: Service<PublishRequest, Response = PublishReceipt> + Clone + Send + 'static,
    P::Error: std::fmt::Debug,
    P::Future: Send,
{
    // Unique ids per run: JetStream would answer a repeated id as a duplicate, unstored.
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    let mut lat = Vec::with_capacity(SEQUENTIAL);
    let start = Instant::now();
    for i in 0..SEQUENTIAL {
        let req =
            PublishRequest::new(subject, payload.clone()).with_message_id(format!("r{run}-s-{i}"));
        let t = Instant::now();
        publisher.clone().oneshot(req).await.unwrap();
        lat.push(t.elapsed());
    }
    let seq = start.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{name:<10} sequential: {SEQUENTIAL} msgs in {seq:?} = {:.0} msg/s, p50 {:?}, p99 {:?}, max {:?}",
        SEQUENTIAL as f64 / seq.as_secs_f64(),
        p(0.50),
        p(0.99),
        lat[lat.len() - 1]
    );

    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..IN_FLIGHT {
        let publisher = publisher.clone();
        let payload = payload.clone();
        let subject = subject.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (t..CONCURRENT).step_by(IN_FLIGHT) {
                let req = PublishRequest::new(subject.clone(), payload.clone())
                    .with_message_id(format!("r{run}-c-{i}"));
                let s = Instant::now();
                publisher.clone().oneshot(req).await.unwrap();
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let took = start.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{name:<10} {IN_FLIGHT} in flight: {CONCURRENT} msgs in {took:?} = {:.0} msg/s, p50 {:?}, p99 {:?}",
        CONCURRENT as f64 / took.as_secs_f64(),
        p(0.50),
        p(0.99)
    );
}

/// The default policy around a producer, each layer in its any-request mode: timeout
/// (1 s) → retry (3 attempts, retryable publish errors) → breaker (errors are failures) →
/// bulkhead (256 at once) → rate limit (one key, far above the offered rate).
fn with_policy<P>(
    producer: P,
) -> impl Service<PublishRequest, Response = PublishReceipt, Error = BoxError, Future: Send>
+ Clone
+ Send
+ 'static
where
    P: Service<PublishRequest, Response = PublishReceipt, Error = PublishError>
        + Clone
        + Send
        + 'static,
    P::Future: Send + 'static,
{
    let retry = RetryLayer::any_request()
        .max_attempts(3)
        .predicate(predicate_fn(
            |r: Result<&PublishReceipt, &BoxError>| match r {
                Ok(_) => Decision::Success,
                Err(e)
                    if e.downcast_ref::<PublishError>()
                        .is_some_and(PublishError::is_retryable) =>
                {
                    Decision::Retry {
                        reason: RetryReason::Error,
                        after: None,
                    }
                }
                Err(_) => Decision::Return,
            },
        ));
    let breaker = CircuitBreakerLayer::builder()
        .classifier(classify_fn(
            |r: Result<&PublishReceipt, &BoxError>| match r {
                Ok(_) => Outcome::Success,
                Err(e) => DefaultClassifier::new().classify_error(e),
            },
        ))
        .build()
        .unwrap();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(256)
        .max_queue(0)
        .release_on_response()
        .build()
        .unwrap();
    let limit = RateLimitLayer::any_request(
        key_fn(|_req: &PublishRequest| Ok::<_, KeyError>("all".to_owned())),
        Quota::per_second("publish", 1_000_000).unwrap(),
    );
    ServiceBuilder::new()
        .layer(TimeoutLayer::any_request(Duration::from_secs(1)))
        .layer(retry)
        .layer(breaker)
        .layer(bulkhead)
        .layer(limit)
        .service(producer)
}

/// The policy's own cost per publish, on an in-memory producer that confirms at once
/// (no broker noise): bare vs behind the policy, ns per publish.
async fn policy_overhead() {
    const N: u32 = 200_000;
    let producer = service_fn(|_req: PublishRequest| async {
        Ok::<_, PublishError>(PublishReceipt::default())
    });
    let run =
        |name: &'static str, ns: f64| println!("{name:<10} in-memory producer: {ns:.0} ns/publish");
    for _ in 0..2 {
        let start = Instant::now();
        for i in 0..N {
            let req = PublishRequest::new("bench.mem", "x").with_message_id(i.to_string());
            producer.oneshot(req).await.unwrap();
        }
        run("bare", start.elapsed().as_nanos() as f64 / f64::from(N));
        let policy = with_policy(producer);
        let start = Instant::now();
        for i in 0..N {
            let req = PublishRequest::new("bench.mem", "x").with_message_id(i.to_string());
            policy.clone().oneshot(req).await.unwrap();
        }
        run("policy", start.elapsed().as_nanos() as f64 / f64::from(N));
    }
}

const CONSUMED: usize = 20_000;

/// Waits until the processor handled `n` messages of type `kind`; returns the time taken.
async fn until_handled<H>(
    p: &StreamProcessor<H>,
    kind: &str,
    n: usize,
    start: Instant,
) -> Duration {
    loop {
        if p.stats().get(kind).is_some_and(|c| c.handled as usize >= n) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn consume_jetstream(js: &jetstream::Context, name: &str) {
    let stream = js.get_stream(name).await.unwrap();
    let subject = format!("{name}.consume");
    let publisher = JetStreamPublisher::from_context(js.clone());
    let mut acks = Vec::new();
    for i in 0..CONSUMED {
        acks.push(publisher.clone().oneshot(
            PublishRequest::new(subject.clone(), vec![b'x'; 256]).with_message_id(format!("k-{i}")),
        ));
        if acks.len() == 256 {
            futures_util::future::try_join_all(acks.drain(..))
                .await
                .unwrap();
        }
    }
    futures_util::future::try_join_all(acks).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench".into()),
            filter_subject: subject.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let handler = service_fn(|_d: Delivery| async { Ok::<_, std::io::Error>(()) });
    let config = ProcessorConfig::new(format!("{name}.dlq")).max_in_flight(64);
    let p = StreamProcessor::new(handler, publisher, &config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let run = {
        let p = p.clone();
        tokio::spawn(async move {
            p.run_jetstream(consumer, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let took = until_handled(&p, &subject, CONSUMED, start).await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    println!(
        "processor jetstream: {CONSUMED} msgs handled and acked in {took:?} = {:.0} msg/s (64 in flight, no-op handler)",
        CONSUMED as f64 / took.as_secs_f64()
    );
}

async fn consume_amqp(conn: &lapin::Connection, publisher: AmqpPublisher, queue: &str) {
    let mut acks = Vec::new();
    for _ in 0..CONSUMED {
        acks.push(
            publisher
                .clone()
                .oneshot(PublishRequest::new(queue, vec![b'x'; 256])),
        );
        if acks.len() == 256 {
            futures_util::future::try_join_all(acks.drain(..))
                .await
                .unwrap();
        }
    }
    futures_util::future::try_join_all(acks).await.unwrap();
    let handler = service_fn(|_d: Delivery| async { Ok::<_, std::io::Error>(()) });
    let config = ProcessorConfig::new(format!("{queue}.dlq")).max_in_flight(64);
    let p = StreamProcessor::new(handler, publisher, &config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let (ran, took) = tokio::join!(
        p.run_amqp(conn, queue, async {
            let _ = stopped.await;
        }),
        async {
            let took = until_handled(&p, queue, CONSUMED, start).await;
            stop.send(()).unwrap();
            took
        }
    );
    ran.unwrap();
    println!(
        "processor rabbitmq:  {CONSUMED} msgs handled and acked in {took:?} = {:.0} msg/s (prefetch 64, no-op handler)",
        CONSUMED as f64 / took.as_secs_f64()
    );
}

async fn relay_run(js: &jetstream::Context, subject: &str, relays: usize) {
    let (mut client, conn) = env("DATABASE_URL", "postgres://root@127.0.0.1:5432/test")
        .parse::<tokio_postgres::Config>()
        .unwrap()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let schema = format!("palisade_bench_{}_{relays}", suffix());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let outbox = Outbox::new(&format!("{schema}.outbox")).unwrap();
    outbox.migrate(&client).await.unwrap();
    for chunk in 0..ROWS / 1000 {
        let tx = client.transaction().await.unwrap();
        for i in 0..1000 {
            let n = chunk * 1000 + i;
            outbox
                .enqueue(
                    &tx,
                    &OutboxMessage::new(subject, vec![b'x'; 256])
                        .with_message_id(format!("r{relays}-{n}")),
                )
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..relays {
        let relay =
            OutboxRelay::builder(outbox.clone(), JetStreamPublisher::from_context(js.clone()))
                .batch_size(100)
                .build()
                .unwrap();
        let (mut c, conn) = env("DATABASE_URL", "postgres://root@127.0.0.1:5432/test")
            .parse::<tokio_postgres::Config>()
            .unwrap()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        tasks.push(tokio::spawn(async move {
            while relay.run_once(&mut c).await.unwrap().claimed > 0 {}
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    assert_eq!(outbox.pending(&client).await.unwrap(), 0);
    println!(
        "relay x{relays}: {ROWS} rows in {took:?} = {:.0} rows/s (batch 100, JetStream)",
        ROWS as f64 / took.as_secs_f64()
    );
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list
    }
    let nats = async_nats::connect(env("NATS_URL", "nats://127.0.0.1:4222"))
        .await
        .expect("NATS");
    let js = jetstream::new(nats);
    let name = format!("palisade_bench_{}", suffix());
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    policy_overhead().await;
    // Bare and behind the default policy, alternately (twice each), on one subject.
    for _ in 0..2 {
        measure(
            "jetstream",
            JetStreamPublisher::from_context(js.clone()),
            &format!("{name}.events"),
        )
        .await;
        measure(
            "js+policy",
            with_policy(JetStreamPublisher::from_context(js.clone())),
            &format!("{name}.events"),
        )
        .await;
    }

    let conn = lapin::Connection::connect(
        &env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ");
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let amqp = AmqpPublisher::new(conn.create_channel().await.unwrap(), "")
        .await
        .unwrap();
    // The queue is purged between runs: a growing queue slows RabbitMQ down.
    let purge = || async {
        channel
            .queue_purge(name.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap();
    };
    for _ in 0..2 {
        measure("rabbitmq", amqp.clone(), &name).await;
        purge().await;
        measure("mq+policy", with_policy(amqp.clone()), &name).await;
        purge().await;
    }
    channel
        .queue_purge(name.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    consume_amqp(&conn, amqp, &name).await;
    for q in [name.clone(), format!("{name}.retry")] {
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    consume_jetstream(&js, &name).await;

    relay_run(&js, &format!("{name}.relay"), 1).await;
    relay_run(&js, &format!("{name}.relay"), 2).await;
    js.delete_stream(&name).await.unwrap();
}
