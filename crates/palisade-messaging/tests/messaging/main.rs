//! palisade-messaging's tests, against the real brokers where they need one.

#[cfg(any(feature = "nats", feature = "postgres", feature = "amqp"))]
mod proxy;
mod support;

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod consumer;
#[cfg(feature = "amqp")]
mod consumer_amqp;
mod jobs;
#[cfg(feature = "redis")]
mod jobs_redis;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "postgres")]
mod outbox;
mod resilience;
mod write_behind;
