//! Tests of palisade-workflow: one binary, one module per concept. PostgreSQL tests need
//! feature `postgres` and a server at `DATABASE_URL`; outside CI they skip with a printed
//! reason when none answers, under `CI=true` they panic.

#![allow(unreachable_pub)]

mod aggregate;
mod bank;
mod event_store;
#[cfg(feature = "postgres")]
mod pg_event_store;
mod saga;
mod support;
mod translate;
mod twopc;
