//! The event stream processor: consume a broker, dispatch by type, ack after success.
//!
//! A [`StreamProcessor`] pulls from a JetStream durable consumer (`run_jetstream`, feature
//! `nats`) or a RabbitMQ queue (`run_amqp`, feature `amqp`) and hands each
//! message, as a [`Delivery`], to a handler `Service<Delivery>` — usually a [`Dispatch`]
//! routing by message type ([`TYPE_HEADER`], else the subject). What it guarantees is listed
//! on [`StreamProcessor`]: bounded concurrency, ack only after success, redelivery with
//! backoff, dead letters with the reason after `max_attempts`, graceful shutdown, and
//! counts per message type ([`StreamProcessor::stats`]).
//!
//! # Effectively once: the inbox
//!
//! Delivery is at least once (a handler that succeeded may see its message again if the
//! ack was lost, a relay republished it, or a shutdown abandoned it). Wrap the handler in
//! `palisade-idempotency`'s `InboxLayer` keyed by the message id, so a repeat is answered
//! `Duplicate` without running the effect again and a repeat arriving while the first is
//! still running fails with `IdempotencyConflict`, which the processor redelivers later.
//! (This crate depends on core only, so the example uses the facade; the facade's test
//! `consumer_inbox` runs it against RabbitMQ with every message published three times.)
//!
//! ```ignore
//! use palisade::idempotency::{InboxLayer, MemoryStore};
//! let handler = InboxLayer::new(MemoryStore::new(), |d: &Delivery| {
//!     d.message_id.clone().unwrap_or_else(|| format!("seq-{:?}", d.sequence))
//! })
//! .layer(Dispatch::new().route("orders.created", create_order));
//! let processor = StreamProcessor::new(handler, dead_letters, &ProcessorConfig::new("orders.dlq"))?;
//! ```
//!
//! # Example
//!
//! ```
//! use palisade_messaging::consumer::{Delivery, Dispatch, Permanent};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let handler = Dispatch::new()
//!     .route("orders.created", service_fn(|d: Delivery| async move {
//!         let _order: u64 = std::str::from_utf8(&d.payload)
//!             .ok()
//!             .and_then(|s| s.parse().ok())
//!             .ok_or_else(|| Permanent("payload is not an order id".into()))?;
//!         Ok::<_, Permanent>(())
//!     }));
//! assert!(handler.clone().oneshot(Delivery::new("orders.created", "42")).await.is_ok());
//! // Undecodable: a Permanent error, dead-lettered without retries.
//! let err = handler.clone().oneshot(Delivery::new("orders.created", "x")).await.unwrap_err();
//! assert!(err.is::<Permanent>());
//! // No handler for the type: Permanent too.
//! assert!(handler.oneshot(Delivery::new("orders.deleted", "1")).await.unwrap_err().is::<Permanent>());
//! # }
//! ```

#[cfg(feature = "amqp")]
mod amqp;
mod config;
mod delivery;
mod dispatch;
mod events;
#[cfg(feature = "nats")]
mod nats;
mod processor;

#[cfg(feature = "amqp")]
pub use self::amqp::ATTEMPT_HEADER;
pub use self::config::ProcessorConfig;
pub use self::delivery::{Delivery, Permanent, TYPE_HEADER};
pub use self::dispatch::Dispatch;
pub use self::events::ConsumerEvent;
pub use self::processor::{
    DEAD_LETTER_ATTEMPTS, DEAD_LETTER_REASON, DEAD_LETTER_SUBJECT, StreamProcessor, TypeCounts,
};
