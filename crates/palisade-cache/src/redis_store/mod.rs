//! [`RedisStore`]: a [`CacheStore`] in Redis (feature `redis`), shared by every process
//! that uses the same Redis and prefix.
//!
//! One Redis string per primary key, under `<prefix><16 hex digits of the key's hash>`
//! (default prefix `palisade:cache:`): no request text appears in the Redis key; the key's
//! full text is stored in the value and compared on every lookup, so a hash collision is a
//! miss. Values are written with `SET … PX <ttl>` (the layer's time to live of the entry,
//! at least 1 ms) and read with `GET`; a value larger than
//! [`max_value_bytes`](RedisStore::max_value_bytes) is not written (and the key is deleted,
//! so no older copy outlives it). The connection is a `redis` multiplexed
//! `ConnectionManager` (reconnects on its own), cloned per command. Every command has a
//! [`timeout`](RedisStore::timeout); a failed or timed-out read counts as a miss, a failed
//! write is dropped, each logged at `warn` under the `palisade_cache::redis` target.
//!
//! Times are stored as wall-clock milliseconds and read back through the store's
//! [`Clock`], which the [`CacheLayer`](crate::CacheLayer) hands it when it makes a
//! service, so the `Age` of a response stored by one process is right in another (given
//! clocks in sync).
//!
//! The value format (version 1) is binary: `PCv1`, the key text, then per variant the
//! status, version, times, directives, header fields, `Vary` values and body, each length
//! prefixed. Anything that does not decode (truncated, another version) is a miss.
//!
//! ```no_run
//! use palisade_cache::{CacheLayer, RedisStore};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> redis::RedisResult<()> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379")
//!     .await?
//!     .prefix("shop:cache:")
//!     .max_value_bytes(1 << 20)
//!     .timeout(Duration::from_millis(100));
//! let layer = CacheLayer::new(store).name("pages");
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

mod codec;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionLike, ConnectionManager};

use self::codec::{decode, encode};
use crate::freshness::Clock;
use crate::store::{CacheStore, Entry};

/// Default [`RedisStore::prefix`].
pub const DEFAULT_PREFIX: &str = "palisade:cache:";
/// Default [`RedisStore::max_value_bytes`]: 4 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 4 << 20;
/// Default [`RedisStore::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

const TARGET: &str = "palisade_cache::redis";

/// A cache store in Redis; see the [module docs](self). Clones share the connection.
#[derive(Clone)]
pub struct RedisStore<C = ConnectionManager> {
    conn: C,
    prefix: Arc<str>,
    max_value_bytes: usize,
    timeout: Duration,
    clock: Arc<ArcSwap<Clock>>,
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self::new(ConnectionManager::new(client).await?))
    }
}

impl<C> RedisStore<C> {
    /// A store on `conn` (a `ConnectionManager`, or any multiplexed connection), with the
    /// default prefix, value cap and timeout.
    pub fn new(conn: C) -> Self {
        Self {
            conn,
            prefix: DEFAULT_PREFIX.into(),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            timeout: DEFAULT_TIMEOUT,
            clock: Arc::new(ArcSwap::from_pointee(Clock::new())),
        }
    }

    /// The prefix of every Redis key (at most 256 bytes; longer ones are cut at a character
    /// boundary).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        let mut end = prefix.len().min(256);
        while !prefix.is_char_boundary(end) {
            end -= 1;
        }
        self.prefix = prefix[..end].into();
        self
    }

    /// Largest value written (clamped to 1 KiB – 512 MiB, Redis's own limit); larger
    /// entries are not stored.
    #[must_use]
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes.clamp(1 << 10, 512 << 20);
        self
    }

    /// How long one command may take (clamped to 1 ms – 60 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), Duration::from_secs(60));
        self
    }

    /// The Redis key of a primary key hash: `<prefix><16 hex digits>`.
    pub fn redis_key(&self, hash: u64) -> String {
        format!("{}{hash:016x}", self.prefix)
    }

    /// The connection.
    pub fn connection(&self) -> &C {
        &self.conn
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd, what: &str) -> Option<T> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(target: TARGET, error = %e, "redis {what} failed");
                None
            }
            Err(_) => {
                tracing::warn!(target: TARGET, timeout = ?self.timeout, "redis {what} timed out");
                None
            }
        }
    }
}

impl<C> CacheStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn get(&self, key: u64) -> Option<Arc<Entry>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.redis_key(key));
        let value: Option<Vec<u8>> = self.run(cmd, "GET").await?;
        let clock = self.clock.load();
        let entry = decode(&value?, &clock);
        if entry.is_none() {
            tracing::warn!(target: TARGET, "undecodable cache entry read as a miss");
        }
        entry.map(Arc::new)
    }

    async fn insert(&self, key: u64, entry: Arc<Entry>, ttl: Duration) {
        let value = encode(&entry, &self.clock.load());
        let redis_key = self.redis_key(key);
        if value.len() > self.max_value_bytes {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(redis_key);
            let _: Option<i64> = self.run(cmd, "DEL").await;
            return;
        }
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(redis_key).arg(value).arg("PX").arg(ms);
        let _: Option<()> = self.run(cmd, "SET").await;
    }

    async fn remove(&self, key: u64) {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.redis_key(key));
        let _: Option<i64> = self.run(cmd, "DEL").await;
    }

    fn attach(&self, _listeners: &palisade_core::Listeners<crate::CacheEvent>, clock: &Clock) {
        self.clock.store(Arc::new(*clock));
    }
}
