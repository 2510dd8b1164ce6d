//! Broker URLs, skipping outside CI, unique names.

// Each broker's helpers are used only when its feature is on.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `var`, or `default`.
pub(crate) fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Outside CI: print why and return `None` (the test skips). Under `CI=true`: panic.
pub(crate) fn unavailable<T>(what: &str, err: impl std::fmt::Display) -> Option<T> {
    assert!(
        std::env::var("CI").is_ok_and(|v| v != "true") || std::env::var("CI").is_err(),
        "{what} must be reachable under CI=true: {err}"
    );
    eprintln!("skipping: {what} is not reachable: {err}");
    None
}

/// A name no other test (or run) uses: `prefix_<pid>_<nanos>_<n>`.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(feature = "nats")]
pub(crate) async fn nats() -> Option<async_nats::Client> {
    let url = url("NATS_URL", "nats://127.0.0.1:4222");
    match tokio::time::timeout(std::time::Duration::from_secs(5), async_nats::connect(&url)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => unavailable("NATS", e),
        Err(e) => unavailable("NATS", e),
    }
}

#[cfg(feature = "amqp")]
pub(crate) async fn amqp() -> Option<lapin::Connection> {
    let url = url("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => unavailable("RabbitMQ", e),
        Err(e) => unavailable("RabbitMQ", e),
    }
}

#[cfg(feature = "postgres")]
pub(crate) fn pg_config() -> tokio_postgres::Config {
    url("DATABASE_URL", "postgres://root@127.0.0.1:5432/test")
        .parse()
        .expect("DATABASE_URL parses")
}

#[cfg(feature = "postgres")]
pub(crate) async fn postgres() -> Option<tokio_postgres::Client> {
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        pg_config().connect(tokio_postgres::NoTls),
    )
    .await
    {
        Ok(Ok((client, conn))) => {
            tokio::spawn(conn);
            Some(client)
        }
        Ok(Err(e)) => unavailable("PostgreSQL", e),
        Err(e) => unavailable("PostgreSQL", e),
    }
}
