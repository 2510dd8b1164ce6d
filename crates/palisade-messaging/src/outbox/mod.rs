//! The transactional outbox on PostgreSQL (feature `postgres`).
//!
//! A service that changes its database and must tell others about it writes the message
//! into an outbox table **in the same transaction** ([`Outbox::enqueue`]); a relay
//! ([`OutboxRelay`]) later publishes the pending rows through any producer
//! `Service<PublishRequest>` and marks them sent. The change and the message commit or roll
//! back together; the broker can be down without failing the business transaction.
//!
//! - **At least once, deduplicated downstream.** The relay publishes a row, then marks it
//!   sent in the transaction that locked it. A relay that dies between the two leaves the
//!   row pending (its transaction rolls back) and the row is published again later with
//!   the same message id, which JetStream drops (`Nats-Msg-Id`) and a consumer's inbox
//!   recognises.
//! - **Several relays.** Rows are claimed with `SELECT … FOR UPDATE SKIP LOCKED`, so two
//!   relays never publish the same row concurrently; they share the work.
//! - **Wake-up.** `enqueue` also runs `pg_notify` on the outbox's channel, delivered when
//!   the caller commits; an idle relay `LISTEN`s and wakes at once, and polls every
//!   `poll_interval` anyway (a missed notification, rows inserted by other means).
//! - **A hung broker cannot stall the table.** Each publish is bounded by the relay's
//!   `publish_timeout`; a publish still unconfirmed then counts as failed.
//! - **Poison rows never block.** A failed publish increments `attempts`, keeps the error
//!   in `last_error` and sets `next_attempt_at` with exponential backoff; rows due later
//!   are skipped, and after `max_attempts` a row stays parked (`sent_at` null,
//!   `attempts = max_attempts`) for an operator.
//!
//! # Table
//!
//! [`Outbox::migrate`] creates (idempotently):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS <table> (
//!     id              bigserial PRIMARY KEY,
//!     message_id      text NOT NULL UNIQUE,
//!     subject         text NOT NULL,
//!     payload         bytea NOT NULL,
//!     header_names    text[] NOT NULL DEFAULT '{}',
//!     header_values   text[] NOT NULL DEFAULT '{}',
//!     created_at      timestamptz NOT NULL DEFAULT now(),
//!     attempts        integer NOT NULL DEFAULT 0,
//!     next_attempt_at timestamptz NOT NULL DEFAULT now(),
//!     last_error      text,
//!     sent_at         timestamptz
//! );
//! CREATE INDEX IF NOT EXISTS <table>_pending ON <table> (next_attempt_at, id) WHERE sent_at IS NULL;
//! ```
//!
//! Sent rows are kept for audit; delete them with [`Outbox::purge_sent`].
//!
//! # Example
//!
//! ```no_run
//! # #[allow(dead_code)] async fn demo(mut client: tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use palisade_messaging::outbox::{Outbox, OutboxMessage};
//!
//! let outbox = Outbox::new("app.outbox")?;
//! outbox.migrate(&client).await?;
//! let tx = client.transaction().await?;
//! tx.execute("UPDATE app.orders SET state = 'paid' WHERE id = 42", &[]).await?;
//! outbox.enqueue(&tx, &OutboxMessage::new("orders.paid", "{\"id\":42}").with_message_id("order-42-paid")).await?;
//! tx.commit().await?; // the update and the message, or neither
//! # Ok(()) }
//! ```

mod relay;
mod table;

pub use self::relay::{OutboxRelay, OutboxRelayBuilder, RelayBatch};
pub use self::table::{Outbox, OutboxMessage};
