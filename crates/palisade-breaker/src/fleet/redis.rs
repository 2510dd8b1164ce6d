//! The flush, off the request path: a task on the Tokio runtime runs [`SCRIPT`] once per
//! flush interval (one `EVALSHA` round trip, the script loaded on first use), sending this
//! instance's counts and probe report and reading the fleet's window and state back. The
//! task holds the breaker weakly: it ends at the first tick after the last layer, service
//! and handle of the breaker are dropped.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use palisade_core::storage_key;
use redis::aio::ConnectionManager;
use tokio::time::MissedTickBehavior;

use crate::State;
use crate::machine::{FleetReport, FleetView, Settings};
use crate::shared::Breaker;
use crate::window::{SlidingWindow, Totals};

/// The flush's Lua script.
pub(crate) const SCRIPT: &str = include_str!("flush.lua");

/// One breaker's link to Redis.
pub(crate) struct Link {
    conn: ConnectionManager,
    script: redis::Script,
    window_key: String,
    state_key: String,
    /// This instance's id in the shared state (random, per breaker).
    id: String,
    /// The arguments every flush sends, as the script numbers them (2, 6–13, 20, 21).
    window_secs: u64,
    minimum_calls: u32,
    failure_rate: f32,
    slow_rate: f32,
    wait_ms: u64,
    multiplier: f64,
    max_wait_ms: u64,
    permitted: u32,
    max_half_open_ms: u64,
    lease_ttl_ms: u64,
    state_ttl_ms: u64,
    /// Bound on one flush's round trip.
    timeout: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("state_key", &self.state_key)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A random id per breaker, so two instances in one process are two members of the fleet.
fn instance_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}", h.finish())
}

/// The Redis keys of a shared breaker: `<prefix>{<name>}:window` and `<prefix>{<name>}:state`,
/// the name in core's storage-key encoding.
pub(crate) fn keys(prefix: &str, name: &str) -> (String, String) {
    let mut base = String::with_capacity(prefix.len() + name.len() + 2);
    base.push_str(prefix);
    base.push('{');
    storage_key::push_segment(&mut base, name);
    base.push('}');
    (format!("{base}:window"), format!("{base}:state"))
}

impl Link {
    pub(crate) fn new(
        conn: ConnectionManager,
        prefix: &str,
        name: &str,
        settings: &Settings,
        flush_interval: Duration,
    ) -> Self {
        let (window_key, state_key) = keys(prefix, name);
        let window_secs = match settings.window {
            SlidingWindow::Time(n) => u64::from(n),
            // Rejected by the config's validation; one second would do no harm.
            SlidingWindow::Count(_) => 1,
        };
        let max_half_open = settings.max_wait_in_half_open.unwrap_or(Duration::ZERO);
        let longest = Duration::from_secs(window_secs)
            .max(settings.max_wait_in_open)
            .max(max_half_open);
        Self {
            conn,
            script: redis::Script::new(SCRIPT),
            window_key,
            state_key,
            id: instance_id(),
            window_secs,
            minimum_calls: settings.minimum_calls,
            failure_rate: settings.failure_rate,
            slow_rate: settings.slow_rate,
            wait_ms: ms(settings.wait_in_open),
            multiplier: settings.wait_multiplier,
            max_wait_ms: ms(settings.max_wait_in_open),
            permitted: settings.permitted_in_half_open,
            max_half_open_ms: ms(max_half_open),
            // An instance that misses five flushes gives its unfinished probe leases back.
            lease_ttl_ms: ms((flush_interval * 5).max(Duration::from_millis(500))),
            state_ttl_ms: ms(longest * 2 + Duration::from_secs(60)),
            timeout: (flush_interval * 2).max(Duration::from_millis(200)),
        }
    }

    /// One round trip: sends `counts` and `report`, returns the fleet's view.
    async fn flush(&self, counts: Totals, report: FleetReport) -> Result<FleetView, String> {
        let mut inv = self.script.prepare_invoke();
        inv.key(&self.window_key)
            .key(&self.state_key)
            .arg(&self.id)
            .arg(self.window_secs)
            .arg(counts.calls)
            .arg(counts.failed)
            .arg(counts.slow)
            .arg(self.minimum_calls)
            .arg(self.failure_rate.to_string())
            .arg(self.slow_rate.to_string())
            .arg(self.wait_ms)
            .arg(self.multiplier.to_string())
            .arg(self.max_wait_ms)
            .arg(self.permitted)
            .arg(self.max_half_open_ms)
            .arg(
                report
                    .epoch
                    .map_or(-1, |e| i64::try_from(e).unwrap_or(i64::MAX)),
            )
            .arg(report.held)
            .arg(report.probes.calls)
            .arg(report.probes.failed)
            .arg(report.probes.slow)
            .arg(report.want)
            .arg(self.lease_ttl_ms)
            .arg(self.state_ttl_ms);
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| format!("redis did not answer within {:?}", self.timeout))?
            .map_err(|e| e.to_string())?;
        parse_reply(&reply)
    }
}

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn parse_reply(r: &[i64]) -> Result<FleetView, String> {
    let &[state, epoch, left, granted, c, f, s, pc, pf, ps] = r else {
        return Err(format!("unexpected script reply {r:?}"));
    };
    let state = match state {
        0 => State::Closed,
        1 => State::Open,
        2 => State::HalfOpen,
        _ => return Err(format!("unexpected shared state {state}")),
    };
    Ok(FleetView {
        state,
        epoch: u64::try_from(epoch).map_err(|_| format!("unexpected epoch {epoch}"))?,
        open_remaining: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
        granted: count(granted),
        window: Totals {
            calls: count(c),
            failed: count(f),
            slow: count(s),
        },
        probes: Totals {
            calls: count(pc),
            failed: count(pf),
            slow: count(ps),
        },
    })
}

/// Starts the flush task of `breaker` on the current Tokio runtime. `None` outside one.
pub(crate) fn spawn(breaker: &Arc<Breaker>, link: Link, interval: Duration) -> Option<()> {
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let weak: Weak<Breaker> = Arc::downgrade(breaker);
    rt.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(breaker) = weak.upgrade() else {
                return;
            };
            let Some((counts, report)) = breaker.fleet_report() else {
                return;
            };
            match link.flush(counts, report).await {
                Ok(view) => breaker.fleet_synced(view),
                Err(error) => breaker.fleet_failed(error),
            }
        }
    });
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        assert_eq!(
            keys("palisade:cb:", "pay}ments"),
            (
                "palisade:cb:{pay%7Dments}:window".to_owned(),
                "palisade:cb:{pay%7Dments}:state".to_owned()
            )
        );
    }

    #[test]
    fn replies_parse() {
        let v = parse_reply(&[1, 7, 1500, 0, 10, 6, 0, 0, 0, 0]).unwrap();
        assert_eq!(v.state, State::Open);
        assert_eq!(v.epoch, 7);
        assert_eq!(v.open_remaining, Duration::from_millis(1500));
        assert_eq!(v.window.failed, 6);
        assert!(parse_reply(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(parse_reply(&[0, 1]).is_err());
        assert_ne!(instance_id(), instance_id());
    }
}
