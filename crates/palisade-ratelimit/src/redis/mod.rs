//! Limits shared across instances through Redis.
//!
//! One Lua script ([`SCRIPT`]) does the whole GCRA decision over all of a route's quotas
//! in one round trip, with Redis's `TIME` as the only clock, so instances with skewed
//! clocks still agree. Each key and quota is one string holding the TAT in microseconds,
//! with a TTL of the time until the quota is full again (an expired key equals a fresh
//! one), named
//!
//! ```text
//! <prefix><layer>:{<key>}:<policy>        e.g.  palisade:rl:checkout:{k-42}:per-second
//! ```
//!
//! - `<prefix>`: [`RedisBackend::prefix`], written as configured (default `palisade:rl:`),
//!   except `{` and `}` (as `%7B`, `%7D`);
//! - `<layer>`: the layer's name, given to [`RateLimitLayer::redis`](crate::RateLimitLayer::redis)
//!   (one per route or layer), so that two routes whose quotas have the same policy name
//!   never share a bucket (as two in-memory limiters do not);
//! - `<key>`: the extracted key, and `<policy>`: the quota's name, both in core's escaped,
//!   stable storage-key encoding ([`palisade_core::storage_key`]: every byte but ASCII
//!   letters, digits, `-`, `.`, `~` as `%XX`, so a key holding `}` or `:` cannot reach
//!   another key's bucket; an IP key is its canonical text). Never a `Debug` string.
//!
//! # Redis Cluster
//!
//! The `{…}` hash tag is the first brace pair of every key (the prefix and the layer name
//! cannot hold braces), so all quotas of one key live in one Redis Cluster slot and every
//! decision touches one slot. With feature `redis-cluster`,
//! [`RedisBackend::connect_cluster`] (or [`RedisBackend::cluster`]) decides over a cluster
//! connection; `tests/cluster.rs` runs against a 3-primary cluster it starts.
//!
//! # Cost of a decision
//!
//! One round trip: `EVALSHA` of the script, built directly as one command (no `GET` or
//! `TIME` round trip; `SCRIPT LOAD` and a retry only when a server answers `NOSCRIPT`,
//! i.e. once per server), on the backend's multiplexed connection. The script is kept to
//! `TIME`, one `GET` per quota and one `SET … PX` per committed quota, and answers one
//! integer per quota (how far its TAT is ahead of now) plus one for the verdict: the
//! remaining units, resets and waits follow client-side from each quota's interval and
//! tolerance. Server-side work is what a decision costs over a `PING`: each `redis.call`
//! inside a script costs about a microsecond or more (argument objects, the command, its
//! reply converted back to Lua), and an empty `EVALSHA` already costs a few. The
//! breakdown, measured by the `ratelimit_redis` bench, is in the crate README.
//!
//! # Token leases
//!
//! [`RedisBackend::lease`] trades accuracy for round trips: one round trip takes up to
//! `units` units of a key's quotas, spent locally until the lease ends; unused units go
//! back to Redis with the key's next round trip or [`RedisBackend::return_leases`].
//!
//! # Failures
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
use redis::Cmd;
use redis::aio::ConnectionManager;

use crate::events::FailAction;
use crate::future::DecideFuture;
use crate::gcra::RateLimitDecision;
use crate::lease::{Leases, Take};
use crate::quota::{MAX_QUOTAS, Quota, QuotaSet};

/// The GCRA Lua script.
pub const SCRIPT: &str = include_str!("../gcra.lua");
/// The token-lease Lua script ([`RedisBackend::lease`]).
pub const LEASE_SCRIPT: &str = include_str!("../lease.lua");

/// Default prefix of the Redis keys.
pub const DEFAULT_PREFIX: &str = "palisade:rl:";
/// Default bound on one Redis decision.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

mod conn;
mod reply;

use conn::{Conn, Script, Scripts, run};
use reply::{micros, parse_lease_reply, parse_reply, parse_reply_hits};

/// A Redis store for [`RateLimitLayer::redis`](crate::RateLimitLayer::redis). Cheap to
/// clone (the connection manager multiplexes one connection).
#[derive(Clone)]
pub struct RedisBackend {
    conn: Conn,
    scripts: Arc<Scripts>,
    leases: Option<Arc<Leases>>,
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
            .field("lease", &self.leases.as_ref().map(|l| l.units))
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Uses an existing connection manager.
    pub fn new(conn: ConnectionManager) -> Self {
        Self::with_conn(Conn::Single(conn))
    }

    fn with_conn(conn: Conn) -> Self {
        Self {
            conn,
            scripts: Arc::new(Scripts {
                gcra: Script::new(SCRIPT),
                lease: Script::new(LEASE_SCRIPT),
            }),
            leases: None,
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

    /// Uses a Redis Cluster connection: each decision touches the keys of one key, which
    /// share a hash tag and so one slot (see the [module docs](self)).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster(conn: redis::cluster_async::ClusterConnection) -> Self {
        Self::with_conn(Conn::Cluster(conn))
    }

    /// Connects to the Redis Cluster whose nodes include `urls`.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub async fn connect_cluster(urls: &[&str]) -> redis::RedisResult<Self> {
        let client = redis::cluster::ClusterClient::new(urls.iter().copied())?;
        Ok(Self::cluster(client.get_async_connection().await?))
    }

    /// Prefix of every Redis key (default `palisade:rl:`); use one per application/route.
    /// `{` and `}` are written `%7B` and `%7D`, so that the prefix cannot move the hash tag
    /// that keeps one key's quotas in one Redis Cluster slot.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.replace('{', "%7B").replace('}', "%7D").into();
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

    /// Token-lease mode: a round trip takes up to `units` units of the key's quotas (as
    /// many as conform, at least one) and this instance spends the rest locally for up to
    /// `hold`, without a round trip; units still unused when the lease ends go back to
    /// Redis with the key's next round trip (or [`return_leases`](Self::return_leases)).
    ///
    /// Fewer round trips (about one per `units` admitted requests of a busy key) for
    /// accuracy: the instances together never admit more than the quotas allow, but units
    /// held by one instance are unavailable to the others until spent or given back, so
    /// a key shared by many instances sees somewhat fewer admissions than its limit while
    /// leases are outstanding, and locally decided requests carry the `RateLimit` fields of
    /// the lease's round trip. `tests/processes.rs` measures it (see the crate README).
    /// Keep `units` well under the burst and `hold` short (say 100 ms).
    ///
    /// Applies to reject-mode decisions of quota sets without [shadow](crate::Quota::shadow)
    /// quotas; wait mode and sets with shadow quotas keep one round trip per request.
    /// `units` below 2 turns leasing off. At most 10,000 keys hold a lease at once.
    #[must_use]
    pub fn lease(mut self, units: u32, hold: Duration) -> Self {
        self.leases = (units >= 2).then(|| Arc::new(Leases::new(units, hold)));
        self
    }

    /// Gives every unit held on lease back to Redis now (e.g. before shutdown); returns how
    /// many units went back. Units of a lease that ended are otherwise given back with its
    /// key's next round trip only.
    pub async fn return_leases(&self) -> Result<u64, palisade_core::BoxError> {
        let Some(leases) = &self.leases else {
            return Ok(0);
        };
        let mut returned = 0;
        for (layer, key, set, units) in leases.drain() {
            let backend = Self {
                layer,
                ..self.clone()
            };
            let cmd = backend.lease_command(&key, &set, 0, units);
            let mut conn = self.conn.clone();
            run(&mut conn, &cmd, &self.scripts.lease, self.timeout).await?;
            returned += u64::from(units);
        }
        Ok(returned)
    }

    /// Units this instance holds on lease now.
    pub fn leased_units(&self) -> u64 {
        self.leases.as_ref().map_or(0, |l| l.held())
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
        Ok(self.decide(&storage_key::encode(key), quotas, None).await?)
    }

    /// Like [`check`](Self::check), but the request spends `hits` units of every quota
    /// (0 counts as 1): admitted only if all of them conform now. A request of more units
    /// than a quota's burst is never admitted. Envoy's `hits_addend` maps here. A request
    /// of more than one unit is never served from a [lease](Self::lease); one unit is
    /// [`check`](Self::check).
    pub async fn check_hits<K: StorageKey + ?Sized>(
        &self,
        key: &K,
        quotas: &QuotaSet,
        hits: u32,
    ) -> Result<RateLimitDecision, palisade_core::BoxError> {
        let hits = hits.max(1);
        if hits == 1 {
            return self.check(key, quotas).await;
        }
        // `hits` units are one request whose emission interval is `hits` times the quota's:
        // the script's arithmetic is unchanged, and the reply (how far each TAT is ahead)
        // reads the same.
        let cmd = self.command_hits(&storage_key::encode(key), quotas, None, u64::from(hits));
        let mut conn = self.conn.clone();
        let reply = run(&mut conn, &cmd, &self.scripts.gcra, self.timeout).await?;
        Ok(parse_reply_hits(&reply, quotas.quotas(), u64::from(hits))?)
    }

    /// The `EVALSHA` command of one decision.
    fn command(&self, key: &str, set: &QuotaSet, max_wait: Option<Duration>) -> Cmd {
        self.command_hits(key, set, max_wait, 1)
    }

    /// [`command`](Self::command) for a request of `hits` units.
    fn command_hits(
        &self,
        key: &str,
        set: &QuotaSet,
        max_wait: Option<Duration>,
        hits: u64,
    ) -> Cmd {
        let quotas = set.quotas();
        let mut cmd = Cmd::with_capacity(5 + 3 * quotas.len(), 160);
        cmd.arg("EVALSHA")
            .arg(self.scripts.gcra.sha.as_str())
            .arg(quotas.len());
        for q in quotas {
            cmd.arg(self.key_of(key, q.name()));
        }
        let max_wait_us: i64 = max_wait.map_or(-1, |d| d.as_micros().min(1 << 52) as i64);
        cmd.arg(max_wait_us);
        let mut flags = [b'0'; MAX_QUOTAS];
        let mut any_shadow = false;
        for (f, q) in flags.iter_mut().zip(quotas) {
            if q.is_shadow() {
                *f = b'1';
                any_shadow = true;
            }
        }
        cmd.arg(if any_shadow {
            &flags[..quotas.len()]
        } else {
            &[][..]
        });
        for q in quotas {
            let (em, tol) = micros(q);
            cmd.arg(em.saturating_mul(hits)).arg(tol);
        }
        cmd
    }

    /// The `EVALSHA` command of a lease: take up to `want` units after giving `back`.
    fn lease_command(&self, key: &str, set: &QuotaSet, want: u32, back: u32) -> Cmd {
        let quotas = set.quotas();
        let mut cmd = Cmd::with_capacity(5 + 3 * quotas.len(), 160);
        cmd.arg("EVALSHA")
            .arg(self.scripts.lease.sha.as_str())
            .arg(quotas.len());
        for q in quotas {
            cmd.arg(self.key_of(key, q.name()));
        }
        cmd.arg(want).arg(back);
        for q in quotas {
            let (em, tol) = micros(q);
            cmd.arg(em).arg(tol);
        }
        cmd
    }

    /// Decides one request for `key` (already in the storage-key encoding): one `EVALSHA`
    /// round trip (plus a `SCRIPT LOAD` and a retry the first time a server lacks the
    /// script), or none when a leased unit is at hand.
    pub(crate) fn decide(
        &self,
        key: &str,
        set: &QuotaSet,
        max_wait: Option<Duration>,
    ) -> DecideFuture {
        if let Some(leases) = &self.leases
            && max_wait.is_none()
            && !set.quotas().iter().any(Quota::is_shadow)
        {
            return self.decide_leased(leases, key, set);
        }
        // Built before the future, which holds only the command, the connection, the
        // scripts and the set.
        let cmd = self.command(key, set, max_wait);
        let mut conn = self.conn.clone();
        let scripts = self.scripts.clone();
        let timeout = self.timeout;
        let set = set.clone();
        Box::pin(async move {
            let reply = run(&mut conn, &cmd, &scripts.gcra, timeout).await?;
            parse_reply(&reply, set.quotas())
        })
    }

    fn decide_leased(&self, leases: &Arc<Leases>, key: &str, set: &QuotaSet) -> DecideFuture {
        let give_back = match leases.take(&self.layer, key, set) {
            Take::Local(d) => return Box::pin(std::future::ready(Ok(d))),
            Take::Remote { give_back } => give_back,
        };
        let cmd = self.lease_command(key, set, leases.units, give_back);
        let mut conn = self.conn.clone();
        let scripts = self.scripts.clone();
        let timeout = self.timeout;
        let set = set.clone();
        let leases = leases.clone();
        let layer = self.layer.clone();
        let key = key.to_owned();
        Box::pin(async move {
            let reply = run(&mut conn, &cmd, &scripts.lease, timeout).await?;
            let (taken, d) = parse_lease_reply(&reply, set.quotas())?;
            leases.keep(layer, key, &set, taken, d);
            Ok(d.with_extra_remaining(u64::from(taken.saturating_sub(1))))
        })
    }
}
