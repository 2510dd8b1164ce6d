//! Limits shared across instances through Redis.
//!
//! One Lua script ([`SCRIPT`]) does the whole GCRA decision over all of a route's quotas
//! in one round trip (`EVALSHA`, loaded on first use by `redis::Script`), with Redis's
//! `TIME` as the only clock, so instances with skewed clocks still agree. Each key and
//! quota is one string holding the TAT in microseconds, with a TTL of the time until the
//! quota is full again (an expired key equals a fresh one), named
//!
//! ```text
//! <prefix><layer>:{<key>}:<policy>        e.g.  palisade:rl:checkout:{k-42}:per-second
//! ```
//!
//! - `<prefix>`: [`RedisBackend::prefix`], written as configured (default `palisade:rl:`);
//! - `<layer>`: the layer's name, given to [`RateLimitLayer::redis`](crate::RateLimitLayer::redis)
//!   (one per route or layer), so that two routes whose quotas have the same policy name
//!   never share a bucket (as two in-memory limiters do not);
//! - `<key>`: the extracted key, and `<policy>`: the quota's name, both in core's escaped,
//!   stable storage-key encoding ([`palisade_core::storage_key`]: every byte but ASCII
//!   letters, digits, `-`, `.`, `~` as `%XX`, so a key holding `}` or `:` cannot reach
//!   another key's bucket; an IP key is its canonical text). Never a `Debug` string.
//!
//! The `{…}` hash tag keeps all quotas of one key in one Redis Cluster slot, which the script
//! requires.
//!
//! Every call is bounded by [`RedisBackend::timeout`] (default 50 ms). On an error or
//! timeout the [`FailAction`] decides: admit (default), refuse with `StoreUnavailable`
//! (503), or decide with the local in-memory limiter; a
//! [`RateLimitEvent::StoreFailed`](crate::RateLimitEvent::StoreFailed) is emitted either way.
//!
//! The decision future is boxed (one allocation per request, next to the command
//! buffers redis-rs allocates anyway); the in-memory path allocates nothing.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::storage_key::{self, StorageKey};
use redis::aio::ConnectionManager;

use crate::events::FailAction;
use crate::future::DecideFuture;
use crate::gcra::{QuotaState, RateLimitDecision};
use crate::quota::{MAX_QUOTAS, QuotaSet};

/// The GCRA Lua script.
pub const SCRIPT: &str = include_str!("gcra.lua");

/// Default prefix of the Redis keys.
pub const DEFAULT_PREFIX: &str = "palisade:rl:";
/// Default bound on one Redis decision.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// A Redis store for [`RateLimitLayer::redis`](crate::RateLimitLayer::redis). Cheap to
/// clone (the connection manager multiplexes one connection).
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
    script: Arc<redis::Script>,
    prefix: Arc<str>,
    /// The layer's name, escaped (`_` until one is given).
    layer: Arc<str>,
    timeout: Duration,
    fail: FailAction,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.prefix)
            .field("layer", &self.layer)
            .field("timeout", &self.timeout)
            .field("fail", &self.fail)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Uses an existing connection manager.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            prefix: DEFAULT_PREFIX.into(),
            layer: "_".into(),
            timeout: DEFAULT_TIMEOUT,
            fail: FailAction::Open,
        }
    }

    /// Connects to `url` (`redis://127.0.0.1:6379`) with a connection manager.
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self::new(ConnectionManager::new(client).await?))
    }

    /// Connects lazily to `url` on first use (a bad URL fails now). Must be called inside
    /// a Tokio runtime.
    pub fn lazy(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self::new(client.get_connection_manager_lazy(
            redis::aio::ConnectionManagerConfig::new(),
        )?))
    }

    /// Prefix of every Redis key (default `palisade:rl:`); use one per application/route.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The name of the layer (route) these limits belong to, the `<layer>` segment of every
    /// key. [`RateLimitLayer::redis`](crate::RateLimitLayer::redis) sets it; set it yourself
    /// only to use [`check`](Self::check) directly.
    #[must_use]
    pub fn layer_name(mut self, name: &str) -> Self {
        let mut seg = String::new();
        storage_key::push_segment(&mut seg, name);
        self.layer = seg.into();
        self
    }

    /// Bound on one decision, round trip included (default 50 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis fails or times out (default [`FailAction::Open`]).
    #[must_use]
    pub fn on_failure(mut self, action: FailAction) -> Self {
        self.fail = action;
        self
    }

    pub(crate) fn fail_action(&self) -> FailAction {
        self.fail
    }

    /// The Redis key of one quota of one key: `<prefix><layer>:{<key>}:<policy>` (see the
    /// [module docs](self)); every instance must use the same key extractor and layer name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use palisade_ratelimit::redis::RedisBackend;
    /// let b = RedisBackend::lazy("redis://127.0.0.1:6379").unwrap().layer_name("checkout");
    /// assert_eq!(b.redis_key("k}:x", "per second"), "palisade:rl:checkout:{k%7D%3Ax}:per%20second");
    /// let ip: std::net::IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    /// assert_eq!(b.redis_key(&ip, "s"), "palisade:rl:checkout:{10.0.0.1}:s");
    /// # }
    /// ```
    pub fn redis_key<K: StorageKey + ?Sized>(&self, key: &K, policy: &str) -> String {
        self.key_of(&storage_key::encode(key), policy)
    }

    /// The Redis key for an already encoded key segment.
    fn key_of(&self, key: &str, policy: &str) -> String {
        let mut out = String::with_capacity(
            self.prefix.len() + self.layer.len() + key.len() + policy.len() + 8,
        );
        out.push_str(&self.prefix);
        out.push_str(&self.layer);
        out.push_str(":{");
        out.push_str(if key.is_empty() { "_" } else { key });
        out.push_str("}:");
        storage_key::push_segment(&mut out, policy);
        out
    }

    /// Decides one request for `key` against `quotas` in reject mode, consuming its units
    /// if admitted: one `EVALSHA` round trip, bounded by the [timeout](Self::timeout).
    pub async fn check<K: StorageKey + ?Sized>(
        &self,
        key: &K,
        quotas: &QuotaSet,
    ) -> Result<RateLimitDecision, palisade_core::BoxError> {
        Ok(self
            .decide(storage_key::encode(key), quotas.clone(), None)
            .await?)
    }

    /// Like [`check`](Self::check), but the request spends `hits` units of every quota
    /// (0 counts as 1): admitted only if all of them conform now. A request of more units
    /// than a quota's burst is never admitted. Envoy's `hits_addend` maps here.
    pub async fn check_hits<K: StorageKey + ?Sized>(
        &self,
        key: &K,
        quotas: &QuotaSet,
        hits: u32,
    ) -> Result<RateLimitDecision, palisade_core::BoxError> {
        Ok(self
            .decide_hits(storage_key::encode(key), quotas.clone(), None, hits.max(1))
            .await?)
    }

    /// Decides one request for `key` (already in the storage-key encoding).
    pub(crate) fn decide(
        &self,
        key: String,
        set: QuotaSet,
        max_wait: Option<Duration>,
    ) -> DecideFuture {
        self.decide_hits(key, set, max_wait, 1)
    }

    /// Decides one request of `hits` units for `key` (already in the storage-key encoding).
    fn decide_hits(
        &self,
        key: String,
        set: QuotaSet,
        max_wait: Option<Duration>,
        hits: u32,
    ) -> DecideFuture {
        let this = self.clone();
        Box::pin(async move {
            let mut inv = this.script.prepare_invoke();
            let max_wait_us: i64 = max_wait.map_or(-1, |d| d.as_micros().min(1 << 52) as i64);
            inv.arg(max_wait_us).arg(hits);
            for q in set.quotas() {
                inv.key(this.key_of(&key, q.name()));
                let em = (q.emission_ns() / 1000).max(1);
                inv.arg(em)
                    .arg(em.saturating_mul(u64::from(q.burst_size())));
            }
            let mut conn = this.conn.clone();
            let reply: Vec<i64> = tokio::time::timeout(this.timeout, inv.invoke_async(&mut conn))
                .await
                .map_err(|_| format!("redis did not answer within {:?}", this.timeout))?
                .map_err(|e| e.to_string())?;
            parse_reply(&reply, set.quotas().len())
        })
    }
}

fn us(v: i64) -> Duration {
    Duration::from_micros(v.max(0) as u64)
}

fn parse_reply(reply: &[i64], n: usize) -> Result<RateLimitDecision, String> {
    if reply.len() != 2 + 3 * n || n > MAX_QUOTAS {
        return Err(format!("unexpected script reply {reply:?}"));
    }
    let mut states = [QuotaState::default(); MAX_QUOTAS];
    for (i, s) in states.iter_mut().take(n).enumerate() {
        let r = &reply[2 + 3 * i..5 + 3 * i];
        *s = QuotaState {
            remaining: r[0].max(0) as u64,
            reset: us(r[1]),
            wait: us(r[2]),
        };
    }
    Ok(RateLimitDecision::new(
        reply[0] == 1,
        us(reply[1]),
        &states[..n],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_parsing() {
        let d = parse_reply(&[0, 600_000, 0, 60_000_000, 600_000], 1).unwrap();
        assert!(!d.is_allowed());
        assert_eq!(d.wait(), Duration::from_millis(600));
        assert_eq!(d.states()[0].reset, Duration::from_secs(60));
        assert!(parse_reply(&[1, 0], 1).is_err());
    }
}
