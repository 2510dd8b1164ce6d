//! Redis [`Store`] and [`DistributedLock`] (feature `redis`).
//!
//! One Lua script per operation, so the first execution costs two round trips (begin,
//! complete) and a replay one (begin). Records are hashes under `{prefix}{<sha256 of the
//! store key>}` (the store key is the stable, escaped encoding of scope and client key
//! documented in [`scope`](crate::scope)): the hash tag keeps each record in one cluster
//! slot, and hashing bounds the key length and hides tenant names. Every record expires
//! (`PEXPIRE` of the lease or TTL); the lock's fence key expires with its lock.
//!
//! Fields: `st` (`L` locked / `C` completed), `fp` (fingerprint), `tok` (fencing token),
//! `until` (lease end, server ms), `res` (encoded [`StoredResponse`]). Fencing tokens come
//! from the server clock in microseconds, bumped past the previous token, so they grow
//! even across a record's expiry and recreation. The lock is taken with `SET NX`-style
//! semantics inside the script (the record must be absent or its lease over) and a `PEXPIRE`.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Script, Value};
use sha2::{Digest, Sha256};

use crate::lock::DistributedLock;
use crate::store::{Begin, Fingerprint, Store, StoreError, StoreFuture, StoredResponse};

static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rec = redis.call('HMGET', KEYS[1], 'st', 'fp', 'until', 'tok', 'res')
local took = 0
if rec[1] then
  if rec[1] == 'C' then
    if rec[2] == ARGV[1] then return {2, rec[5]} end
    return {3}
  end
  if tonumber(rec[3]) > now_ms then
    if rec[2] == ARGV[1] then return {1} end
    return {3}
  end
  took = 1
end
local tok = now_us
if rec[4] and tonumber(rec[4]) >= tok then tok = tonumber(rec[4]) + 1 end
local lease = tonumber(ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'st', 'L', 'fp', ARGV[1], 'until', string.format('%.0f', now_ms + lease), 'tok', string.format('%.0f', tok))
redis.call('PEXPIRE', KEYS[1], math.max(lease, tonumber(ARGV[3])))
return {0, string.format('%.0f', tok), took}
",
    )
});

static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local rec = redis.call('HMGET', KEYS[1], 'st', 'tok')
if rec[1] ~= 'L' or rec[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'st', 'C', 'res', ARGV[2])
redis.call('HDEL', KEYS[1], 'until')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local rec = redis.call('HMGET', KEYS[1], 'st', 'tok')
if rec[1] ~= 'L' or rec[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = redis.call('HMGET', KEYS[1], 'st', 'tok', 'until')
if rec[1] ~= 'L' or rec[2] ~= ARGV[1] or tonumber(rec[3]) <= now_ms then return 0 end
local until_ms = now_ms + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'until', string.format('%.0f', until_ms))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
",
    )
});

static LOCK_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local tok = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev and prev >= tok then tok = prev + 1 end
local s = string.format('%.0f', tok)
redis.call('SET', KEYS[2], s, 'PX', ARGV[1])
redis.call('SET', KEYS[1], s, 'NX', 'PX', ARGV[1])
return tok
",
    )
});

static LOCK_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
",
    )
});

static LOCK_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

fn err(e: &redis::RedisError) -> StoreError {
    StoreError::new(e)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// A [`Store`] in Redis, shared by every instance using the same prefix.
///
/// Redis errors become [`StoreError`], which the layer answers with 503 + `Retry-After`
/// without running the handler.
///
/// `C` is the connection: a [`ConnectionManager`] (reconnects by itself) by default, or any
/// cloneable [`ConnectionLike`] (e.g. a wrapper that counts round trips).
#[derive(Clone)]
pub struct RedisStore<C = ConnectionManager> {
    conn: C,
    prefix: Arc<str>,
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<C> RedisStore<C> {
    /// A store over `conn`, with keys starting with `prefix` (e.g. `"idem:"`).
    pub fn new(conn: C, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into().into(),
        }
    }
}

impl RedisStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`).
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| err(&e))?;
        let conn = ConnectionManager::new(client).await.map_err(|e| err(&e))?;
        Ok(Self::new(conn, prefix))
    }
}

impl<C> RedisStore<C> {
    /// The Redis key of a scoped idempotency key.
    pub fn redis_key(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let mut out = String::with_capacity(self.prefix.len() + 66);
        out.push_str(&self.prefix);
        out.push('{');
        for b in digest {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
        }
        out.push('}');
        out
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn begin<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> StoreFuture<'a, Begin> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let v: Value = BEGIN
                .key(self.redis_key(key))
                .arg(&fingerprint[..])
                .arg(millis(lease))
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&e))?;
            let Value::Array(items) = v else {
                return Err(StoreError::new("unexpected reply to begin"));
            };
            match items.first().and_then(int) {
                Some(0) => {
                    let token = items
                        .get(1)
                        .and_then(int)
                        .ok_or_else(|| StoreError::new("begin: bad token"))?;
                    Ok(Begin::Started {
                        fencing_token: token as u64,
                        took_over_expired: items.get(2).and_then(int) == Some(1),
                    })
                }
                Some(1) => Ok(Begin::InFlight),
                Some(2) => match items.get(1) {
                    Some(Value::BulkString(b)) => StoredResponse::decode(b)
                        .map(|r| Begin::Completed(Arc::new(r)))
                        .ok_or_else(|| StoreError::new("begin: undecodable record")),
                    _ => Err(StoreError::new("begin: missing record")),
                },
                Some(3) => Ok(Begin::Mismatch),
                _ => Err(StoreError::new("unexpected reply to begin")),
            }
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        fencing_token: u64,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let v: i64 = COMPLETE
                .key(self.redis_key(key))
                .arg(fencing_token.to_string())
                .arg(response.encode())
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&e))?;
            Ok(v == 1)
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        fencing_token: u64,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let v: i64 = RENEW
                .key(self.redis_key(key))
                .arg(fencing_token.to_string())
                .arg(millis(lease))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&e))?;
            Ok(v == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a str, fencing_token: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let v: i64 = RELEASE
                .key(self.redis_key(key))
                .arg(fencing_token.to_string())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&e))?;
            Ok(v == 1)
        })
    }
}

/// A [`DistributedLock`] in Redis: `SET lock token NX PX lease` and compare-and-set renew and
/// release.
///
/// Keys: `{prefix}{<escaped name>}` for the lock and `{prefix}{<escaped name>}:fence` for the
/// last token, both in one cluster slot (the hash tag) and both expiring with the lease, so
/// no key outlives its lock. The name is escaped as in [`scope`](crate::scope) (every byte
/// outside `A-Z a-z 0-9 - . _ ~` as `%XX`), so a name cannot break out of the hash tag.
/// Tokens are the server clock in microseconds, bumped past the last token while the fence
/// lives, so they grow across expiries without a counter that lives forever.
#[derive(Clone)]
pub struct RedisLock<C = ConnectionManager> {
    conn: C,
    prefix: Arc<str>,
}

impl<C> fmt::Debug for RedisLock<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLock")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<C> RedisLock<C> {
    /// Locks over `conn`, with keys `{prefix}{<escaped name>}` and
    /// `{prefix}{<escaped name>}:fence`.
    pub fn new(conn: C, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into().into(),
        }
    }

    /// The Redis keys of the lock `name`: the lock and its fence.
    pub fn keys(&self, name: &str) -> (String, String) {
        let mut lock = String::with_capacity(self.prefix.len() + name.len() + 2);
        lock.push_str(&self.prefix);
        lock.push('{');
        crate::scope::escape_into(&mut lock, name.as_bytes());
        lock.push('}');
        let fence = format!("{lock}:fence");
        (lock, fence)
    }
}

impl<C> DistributedLock for RedisLock<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn acquire<'a>(&'a self, name: &'a str, lease: Duration) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let (lock, fence) = self.keys(name);
            let tok: i64 = LOCK_ACQUIRE
                .key(lock)
                .key(fence)
                .arg(millis(lease))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&e))?;
            Ok((tok > 0).then_some(tok as u64))
        })
    }

    fn renew<'a>(&'a self, name: &'a str, token: u64, lease: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let (lock, fence) = self.keys(name);
            let v: i64 = LOCK_RENEW
                .key(lock)
                .key(fence)
                .arg(token.to_string())
                .arg(millis(lease))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&e))?;
            Ok(v == 1)
        })
    }

    fn release<'a>(&'a self, name: &'a str, token: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let v: i64 = LOCK_RELEASE
                .key(self.keys(name).0)
                .arg(token.to_string())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&e))?;
            Ok(v == 1)
        })
    }
}
