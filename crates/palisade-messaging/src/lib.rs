//! Messaging patterns as Tower services, on real brokers.
//!
//! | pattern | module | broker (feature) |
//! |---|---|---|
//! | Message producer | [`producer`]: `JetStreamPublisher`, `AmqpPublisher` | NATS JetStream (`nats`), RabbitMQ (`amqp`) |
//! | Transactional outbox | [`outbox`]: `Outbox`, `OutboxRelay` | PostgreSQL (`postgres`) |
//! | Event stream processor | [`consumer`]: `StreamProcessor`, `Dispatch` | NATS JetStream (`nats`), RabbitMQ (`amqp`, reconnecting) |
//! | Write-behind | [`write_behind`]: `WriteBehind` | any store `Service<Vec<(K, V)>>` |
//! | Async processing | [`jobs`]: `AsyncJobLayer`, `JobStatusService` | in memory, or Redis (`redis`) |
//!
//! Every producer is a `tower::Service<`[`PublishRequest`]`>` answering a
//! [`PublishReceipt`] once the broker confirmed the message, or a typed [`PublishError`]; so
//! Palisade's layers stack on them (timeout, retry and rate limit through their
//! `any_request` constructors, breaker and bulkhead as they are, with a classifier and
//! `release_on_response`: the stack is in `tests/messaging/resilience.rs`), and the outbox relay and the processor's dead letters publish through any of
//! them. A message id travels with each message (`Nats-Msg-Id`, AMQP `message-id`) so
//! retries and relays are deduplicated broker-side or by the consumer's inbox.
//!
//! # Example
//!
//! A producer is any `Service<PublishRequest>`; here an in-memory one stands in for
//! [`producer::JetStreamPublisher`] so the example runs without a broker.
//!
//! ```
//! use palisade_messaging::{PublishReceipt, PublishRequest, write_behind::{WriteBehind, WriteBehindConfig}};
//! use std::sync::{Arc, Mutex};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let sent = Arc::new(Mutex::new(Vec::new()));
//! let log = sent.clone();
//! let producer = service_fn(move |req: PublishRequest| {
//!     log.lock().unwrap().push(req);
//!     async { Ok::<_, std::io::Error>(PublishReceipt::default()) }
//! });
//! // Write-behind in front of the producer: a batch of (key, value) becomes messages.
//! let store = service_fn(move |batch: Vec<(String, u64)>| {
//!     let producer = producer.clone();
//!     async move {
//!         for (key, value) in batch {
//!             let req = PublishRequest::new(format!("counters.{key}"), value.to_string())
//!                 .with_message_id(format!("{key}-{value}"));
//!             producer.clone().oneshot(req).await?;
//!         }
//!         Ok::<_, std::io::Error>(())
//!     }
//! });
//! let (writes, worker) = WriteBehind::new(store, &WriteBehindConfig::new()).unwrap();
//! tokio::spawn(worker.run());
//! for v in 1..=3 {
//!     writes.try_write("visits".to_owned(), v).unwrap(); // coalesced per key
//! }
//! writes.shutdown().await.unwrap();
//! let sent = sent.lock().unwrap();
//! assert_eq!(sent.len(), 1);
//! assert_eq!(sent[0].subject, "counters.visits");
//! assert_eq!(&sent[0].payload[..], b"3");
//! # }
//! ```
//!
//! # Testing against the brokers
//!
//! The crate's tests run against PostgreSQL, RabbitMQ and NATS JetStream, read from
//! `DATABASE_URL` (default `postgres://root@127.0.0.1:5432/test`), `AMQP_URL`
//! (`amqp://guest:guest@127.0.0.1:5672/%2f`) and `NATS_URL` (`nats://127.0.0.1:4222`). Outside
//! CI a broker that does not answer skips its tests with a printed reason; under `CI=true`
//! they fail. Each test creates its own schema, queue or stream and deletes it.
//!
//! ```text
//! cargo test -p palisade-messaging --all-features
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod consumer;
pub mod error;
pub mod jobs;
mod message;
#[cfg(feature = "postgres")]
pub mod outbox;
pub mod producer;
pub mod write_behind;

pub use self::error::{PublishError, PublishErrorKind};
pub use self::message::{
    MAX_HEADERS, MAX_MESSAGE_ID_LEN, MAX_SUBJECT_LEN, PublishReceipt, PublishRequest,
};
