//! The outbox table: naming, migration and enqueueing.

use crate::message::PublishRequest;
use bytes::Bytes;
use palisade_core::ConfigError;
use std::sync::Arc;
use tokio_postgres::{GenericClient, Transaction};

/// A message to put in the outbox: the same fields as a
/// [`PublishRequest`](crate::PublishRequest). Without an id, [`Outbox::enqueue`] stores a
/// random UUID (`gen_random_uuid()`, PostgreSQL 13 or later), so a republished row keeps
/// its id.
pub type OutboxMessage = PublishRequest;

/// Longest table name part accepted (PostgreSQL truncates identifiers at 63 bytes, and
/// the index name appends `_pending`).
const MAX_NAME: usize = 50;

#[derive(Debug)]
struct Names {
    /// `"schema"."table"` or `"table"`, quoted.
    table: String,
    /// `"table_pending"`, quoted, unqualified.
    index: String,
    /// The notification channel, unquoted (`schema_table`).
    channel: String,
}

/// An outbox table in PostgreSQL: where messages are enqueued in the caller's transaction,
/// and where relays find them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    names: Arc<Names>,
}

fn check_ident(part: &str) -> Result<(), ConfigError> {
    let ok = !part.is_empty()
        && part.len() <= MAX_NAME
        && part
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "outbox.table",
            "must be `table` or `schema.table`, each 1 to 50 of [a-z0-9_] not starting with a digit",
        ))
    }
}

impl Outbox {
    /// The outbox in `table` (`"outbox"` or `"schema.outbox"`; lowercase ASCII letters,
    /// digits and `_`, up to 50 bytes a part). The schema must exist.
    pub fn new(table: &str) -> Result<Self, ConfigError> {
        let (schema, name) = match table.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, table),
        };
        if let Some(s) = schema {
            check_ident(s)?;
        }
        check_ident(name)?;
        let names = Names {
            table: schema.map_or_else(|| format!("\"{name}\""), |s| format!("\"{s}\".\"{name}\"")),
            index: format!("\"{name}_pending\""),
            channel: schema.map_or_else(|| name.to_owned(), |s| format!("{s}_{name}")),
        };
        Ok(Self {
            names: Arc::new(names),
        })
    }

    /// The quoted, qualified table name, for your own queries.
    pub fn table(&self) -> &str {
        &self.names.table
    }

    /// The `LISTEN`/`NOTIFY` channel relays wait on.
    pub fn channel(&self) -> &str {
        &self.names.channel
    }

    /// Creates the table and its pending-rows index if they do not exist.
    pub async fn migrate(&self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        let Names { table, index, .. } = &*self.names;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    id              bigserial PRIMARY KEY,
                    message_id      text NOT NULL UNIQUE,
                    subject         text NOT NULL,
                    payload         bytea NOT NULL,
                    header_names    text[] NOT NULL DEFAULT '{{}}',
                    header_values   text[] NOT NULL DEFAULT '{{}}',
                    created_at      timestamptz NOT NULL DEFAULT now(),
                    attempts        integer NOT NULL DEFAULT 0,
                    next_attempt_at timestamptz NOT NULL DEFAULT now(),
                    last_error      text,
                    sent_at         timestamptz
                );
                CREATE INDEX IF NOT EXISTS {index} ON {table} (next_attempt_at, id) WHERE sent_at IS NULL;"
            ))
            .await
    }

    /// Inserts `message` inside the caller's transaction and notifies the relays (the
    /// notification is delivered when the transaction commits, and dropped if it rolls
    /// back). Returns the row id.
    ///
    /// The message is not validated here: a message a producer refuses stays pending with
    /// its error in `last_error`.
    pub async fn enqueue(
        &self,
        tx: &Transaction<'_>,
        message: &OutboxMessage,
    ) -> Result<i64, tokio_postgres::Error> {
        let names: Vec<&str> = message.headers.iter().map(|(n, _)| n.as_str()).collect();
        let values: Vec<&str> = message.headers.iter().map(|(_, v)| v.as_str()).collect();
        let payload: &[u8] = &message.payload;
        let sql = format!(
            "WITH ins AS (
                 INSERT INTO {t} (message_id, subject, payload, header_names, header_values)
                 VALUES (COALESCE($1, gen_random_uuid()::text), $2, $3, $4, $5)
                 RETURNING id
             )
             SELECT id, pg_notify($6, '') FROM ins",
            t = self.names.table
        );
        let row = tx
            .query_one(
                &sql,
                &[
                    &message.message_id,
                    &message.subject,
                    &payload,
                    &names,
                    &values,
                    &self.names.channel,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Number of rows not yet sent.
    pub async fn pending(&self, client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} WHERE sent_at IS NULL",
                    self.names.table
                ),
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Deletes sent rows older than `older_than`; returns how many.
    pub async fn purge_sent(
        &self,
        client: &impl GenericClient,
        older_than: std::time::Duration,
    ) -> Result<u64, tokio_postgres::Error> {
        let secs = older_than.as_secs_f64();
        client
            .execute(
                &format!(
                    "DELETE FROM {} WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => $1::float8)",
                    self.names.table
                ),
                &[&secs],
            )
            .await
    }
}

/// A row read back for publishing.
pub(crate) fn row_to_request(row: &tokio_postgres::Row) -> (i64, PublishRequest) {
    let id: i64 = row.get(0);
    let names: Vec<String> = row.get(4);
    let values: Vec<String> = row.get(5);
    let payload: Vec<u8> = row.get(3);
    let request = PublishRequest {
        subject: row.get(2),
        payload: Bytes::from(payload),
        message_id: Some(row.get(1)),
        headers: names.into_iter().zip(values).collect(),
    };
    (id, request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_quoted() {
        let o = Outbox::new("app.outbox").unwrap();
        assert_eq!(o.table(), "\"app\".\"outbox\"");
        assert_eq!(o.channel(), "app_outbox");
        assert_eq!(Outbox::new("outbox").unwrap().table(), "\"outbox\"");
        for bad in [
            "",
            "Outbox",
            "a.b.c",
            "1x",
            "x;drop",
            "a\"b",
            ".x",
            "x.",
            &"x".repeat(51),
        ] {
            let e = Outbox::new(bad).unwrap_err();
            assert_eq!(e.field(), "outbox.table", "{bad}");
        }
        assert!(Outbox::new(&"x".repeat(50)).is_ok());
    }
}
