//! The Redis backend: a hash per job and a sorted set of ids by expiry, per store.

use super::{Job, JobState, Limits, StoredResponse};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use palisade_core::BoxError;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// How long a job still pending or running is kept at least (its process may have died).
const UNFINISHED_TTL: Duration = Duration::from_secs(24 * 3600);

/// Registers a pending job if the store (the index, without its expired ids) has room.
/// KEYS: index, job. ARGV: max jobs, id, unfinished TTL ms.
const CREATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('HSET', KEYS[2], 'state', 'pending')
redis.call('PEXPIRE', KEYS[2], ttl)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
";

/// KEYS: job.
const RUNNING: &str = r"
if redis.call('HGET', KEYS[1], 'state') == 'pending' then
  redis.call('HSET', KEYS[1], 'state', 'running')
end
return 1
";

/// Stores the outcome once (a finished job is never changed), then keeps it for the TTL.
/// KEYS: index, job. ARGV: TTL ms, id, state, status, content type, body, error.
const FINISH: &str = r"
local s = redis.call('HGET', KEYS[2], 'state')
if s == false or s == 'succeeded' or s == 'failed' then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'status', ARGV[4], 'ct', ARGV[5], 'body', ARGV[6], 'error', ARGV[7])
local ttl = tonumber(ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
return 1
";

pub(super) struct RedisJobs {
    conn: ConnectionManager,
    /// `<key_prefix>{<prefix>}:`: every key of the store, one cluster slot.
    base: String,
    create: redis::Script,
    running: redis::Script,
    finish: redis::Script,
}

impl fmt::Debug for RedisJobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJobs")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisJobs {
    pub(super) fn new(conn: ConnectionManager, key_prefix: &str, prefix: &str) -> Self {
        Self {
            conn,
            base: format!("{key_prefix}{{{prefix}}}:"),
            create: redis::Script::new(CREATE),
            running: redis::Script::new(RUNNING),
            finish: redis::Script::new(FINISH),
        }
    }

    fn index(&self) -> String {
        format!("{}index", self.base)
    }

    fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.base)
    }

    pub(super) async fn len(&self) -> Result<usize, BoxError> {
        let mut conn = self.conn.clone();
        let t: (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let now = t.0 * 1000 + t.1 / 1000;
        let n: usize = redis::cmd("ZCOUNT")
            .arg(self.index())
            .arg(format!("({now}"))
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        Ok(n)
    }

    pub(super) async fn create(&self, id: &str, limits: &Limits) -> Result<bool, BoxError> {
        let mut conn = self.conn.clone();
        let ttl = limits.ttl.max(UNFINISHED_TTL);
        let created: i64 = self
            .create
            .key(self.index())
            .key(self.job(id))
            .arg(limits.max_jobs)
            .arg(id)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(created == 1)
    }

    pub(super) async fn running(&self, id: &str) -> Result<(), BoxError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .running
            .key(self.job(id))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(super) async fn finish(
        &self,
        id: &str,
        outcome: Result<StoredResponse, String>,
        limits: &Limits,
    ) -> Result<(), BoxError> {
        let (state, status, ct, body, error) = match outcome {
            Ok(r) => (
                JobState::Succeeded,
                r.status.as_u16(),
                r.content_type
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default(),
                r.body,
                String::new(),
            ),
            Err(e) => (JobState::Failed, 0, Vec::new(), Bytes::new(), e),
        };
        let mut conn = self.conn.clone();
        let _: i64 = self
            .finish
            .key(self.index())
            .key(self.job(id))
            .arg(millis(limits.ttl))
            .arg(id)
            .arg(state.as_str())
            .arg(status)
            .arg(ct)
            .arg(&body[..])
            .arg(error)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<Job>, BoxError> {
        let mut conn = self.conn.clone();
        let mut fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.job(id))
            .query_async(&mut conn)
            .await?;
        let Some(state) = fields
            .get("state")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(JobState::parse)
        else {
            return Ok(None);
        };
        let response = match state {
            JobState::Succeeded => {
                let status = fields
                    .get("status")
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| s.parse::<u16>().ok())
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or("job store: a stored job has no valid status")?;
                let content_type = fields
                    .remove("ct")
                    .filter(|ct| !ct.is_empty())
                    .and_then(|ct| HeaderValue::from_bytes(&ct).ok());
                let body = Bytes::from(fields.remove("body").unwrap_or_default());
                Some(StoredResponse {
                    status,
                    content_type,
                    body,
                })
            }
            _ => None,
        };
        let error = (state == JobState::Failed).then(|| {
            String::from_utf8_lossy(fields.get("error").map_or(&[][..], Vec::as_slice)).into_owned()
        });
        Ok(Some(Job {
            state,
            response,
            error,
            expires: None,
        }))
    }
}
