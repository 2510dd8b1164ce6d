//! PostgreSQL schema shared by every `Pg*` store: [`migrate`] and [`Schema`].

use std::fmt;

use tokio_postgres::Client;

use crate::error::StoreError;

/// A validated PostgreSQL schema name: 1 to 63 bytes of lowercase ASCII letters, digits and
/// `_`, not starting with a digit. It is spliced into SQL (identifiers cannot be bound as
/// parameters), so nothing else is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema(String);

impl Schema {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<Self, StoreError> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && !name.as_bytes()[0].is_ascii_digit()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(StoreError::Invalid(
                "schema must be 1 to 63 bytes of a-z, 0-9 and _, not starting with a digit",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Creates (if missing) the schema and every table and function the `Pg*` stores use:
///
/// - `events (position BIGSERIAL PRIMARY KEY, stream, version, event_type, data JSONB,
///   UNIQUE (stream, version))` and the function `append_events`, which appends a batch under
///   a transaction-scoped advisory lock so that positions are handed out in commit order;
/// - `snapshots (stream PRIMARY KEY, version, state JSONB)`;
/// - `checkpoints (name PRIMARY KEY, position)`;
/// - `sagas (id PRIMARY KEY, name, state, record JSONB)`;
/// - `twopc (tx PRIMARY KEY, state, record JSONB)`.
///
/// Idempotent: run it at every start.
pub async fn migrate(client: &Client, schema: &Schema) -> Result<(), StoreError> {
    let s = schema.as_str();
    let sql = format!(
        r"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.events (
    position   BIGSERIAL PRIMARY KEY,
    stream     TEXT NOT NULL,
    version    BIGINT NOT NULL CHECK (version > 0),
    event_type TEXT NOT NULL,
    data       JSONB NOT NULL,
    UNIQUE (stream, version)
);
CREATE OR REPLACE FUNCTION {s}.append_events(p_stream TEXT, p_expected BIGINT, p_types TEXT[], p_data JSONB[])
RETURNS TABLE (ok BOOLEAN, out_version BIGINT, out_position BIGINT)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE cur BIGINT;
BEGIN
    -- One writer at a time per schema: positions are then handed out in commit order, so a
    -- reader following positions never skips an event that commits later.
    PERFORM pg_advisory_xact_lock(hashtext('palisade_workflow.' || '{s}'));
    SELECT coalesce(max(e.version), 0) INTO cur FROM {s}.events e WHERE e.stream = p_stream;
    IF p_expected >= 0 AND cur <> p_expected THEN
        RETURN QUERY SELECT false, cur, 0::BIGINT;
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO {s}.events AS e (stream, version, event_type, data)
    SELECT p_stream, cur + x.ord, x.t, x.d
    FROM unnest(p_types, p_data) WITH ORDINALITY AS x(t, d, ord)
    ORDER BY x.ord
    RETURNING true, e.version, e.position;
END
$fn$;
CREATE TABLE IF NOT EXISTS {s}.snapshots (
    stream  TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    state   JSONB NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.sagas (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL,
    state  TEXT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS sagas_state ON {s}.sagas (state);
CREATE TABLE IF NOT EXISTS {s}.twopc (
    tx     TEXT PRIMARY KEY,
    state  TEXT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS twopc_state ON {s}.twopc (state);
"
    );
    client.batch_execute(&sql).await?;
    Ok(())
}

/// `u64` → `BIGINT`, refusing values past `i64::MAX`.
pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("value past i64::MAX"))
}

/// `BIGINT` → `u64` (the stores never write negative values; one read back is clamped).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
