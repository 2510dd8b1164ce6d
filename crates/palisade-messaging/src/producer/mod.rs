//! Message producers: `tower::Service<PublishRequest>` implementations that publish to a
//! broker and answer once the broker confirmed the message.
//!
//! | producer | feature | confirmation | dedupe |
//! |---|---|---|---|
//! | [`JetStreamPublisher`] | `nats` | JetStream publish ack (stream, sequence) | `Nats-Msg-Id` inside the stream's duplicate window |
//! | [`AmqpPublisher`] | `amqp` | publisher confirms (`confirm.select`), mandatory routing | `message-id` property (for the consumer's inbox) |
//!
//! Both are `Clone` (clones share one connection) and always ready: the broker client
//! does its own flow control. Errors are [`PublishError`](crate::error::PublishError), typed
//! by [`PublishErrorKind`](crate::error::PublishErrorKind), so a retry policy can retry
//! [`Unavailable`](crate::error::PublishErrorKind::Unavailable) only and a breaker can count
//! it as a failure. Palisade's breaker and bulkhead take any request type and stack on them
//! unchanged; timeout, retry and rate limit do through `TimeoutLayer::any_request`,
//! `RetryLayer::any_request` and `RateLimitLayer::any_request`.

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod nats;

#[cfg(feature = "amqp")]
pub use self::amqp::AmqpPublisher;
#[cfg(feature = "nats")]
pub use self::nats::JetStreamPublisher;
