//! Producer and relay figures against the real brokers (not criterion: p99 needs every
//! sample, and a broker round trip is milliseconds, not nanoseconds).
//!
//! ```text
//! cargo bench -p palisade-messaging --all-features --bench brokers
//! ```
//!
//! Prints, per producer: sequential publishes (one at a time, confirm awaited) with p50/p99
//! latency, and messages/s with 64 publishes in flight; then outbox relay rows/s with 1 and
//! 2 relays publishing to JetStream. Uses its own stream, queue and schemas, deleted after.

use async_nats::jetstream::{self, stream};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use palisade_messaging::outbox::{Outbox, OutboxMessage, OutboxRelay};
use palisade_messaging::producer::{AmqpPublisher, JetStreamPublisher};
use palisade_messaging::{PublishError, PublishReceipt, PublishRequest};
use std::time::Instant;
use tower::{Service, ServiceExt};

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
    P: Service<PublishRequest, Response = PublishReceipt, Error = PublishError>
        + Clone
        + Send
        + 'static,
    P::Future: Send,
{
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    let mut lat = Vec::with_capacity(SEQUENTIAL);
    let start = Instant::now();
    for i in 0..SEQUENTIAL {
        let req = PublishRequest::new(subject, payload.clone()).with_message_id(format!("s-{i}"));
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
                    .with_message_id(format!("c-{i}"));
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
    measure(
        "jetstream",
        JetStreamPublisher::from_context(js.clone()),
        &format!("{name}.events"),
    )
    .await;

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
    measure("rabbitmq", amqp, &name).await;
    channel
        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    relay_run(&js, &format!("{name}.relay"), 1).await;
    relay_run(&js, &format!("{name}.relay"), 2).await;
    js.delete_stream(&name).await.unwrap();
}
