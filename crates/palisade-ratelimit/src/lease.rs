//! Token leases for the Redis backend ([`RedisBackend::lease`](crate::redis::RedisBackend::lease)):
//! one round trip takes up to `units` units of a key's quotas, which this instance then
//! spends locally until the lease ends; units left unused at the end of a lease go back to
//! Redis with the key's next round trip (or with
//! [`return_leases`](crate::redis::RedisBackend::return_leases)).
//!
//! Accuracy: leased units are consumed in Redis when taken, so the instances together
//! still never admit more than the quotas allow (the GCRA bound holds for the units taken).
//! The cost is on the other side: units one instance holds cannot be used by another until
//! they are spent or given back, so a busy key can be refused by one instance while
//! another holds units; and the `RateLimit` fields of a locally decided request are those
//! of the lease's round trip plus the units this instance still holds. `tests/processes.rs`
//! measures the admitted total with leases against the exact mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::gcra::RateLimitDecision;
use crate::quota::QuotaSet;

/// Most keys holding a lease at once; past it, expired leases are dropped (their unused
/// units are then lost to this instance, never over-admitted) and new ones not kept.
pub(crate) const MAX_LEASES: usize = 10_000;

/// Units of one key's quota set held by this instance.
#[derive(Debug)]
struct Lease {
    /// The backend's layer name: two layers sharing a backend keep separate leases.
    layer: Arc<str>,
    set_id: u64,
    set: QuotaSet,
    left: u32,
    expires: Instant,
    /// The decision of the round trip that took the units.
    snapshot: RateLimitDecision,
}

/// What a request does next.
pub(crate) enum Take {
    /// Spent a leased unit: this decision, no round trip.
    Local(RateLimitDecision),
    /// Needs a round trip, giving back `give_back` units of an ended lease.
    Remote { give_back: u32 },
}

/// The leases of one backend.
#[derive(Debug)]
pub(crate) struct Leases {
    pub(crate) units: u32,
    hold: Duration,
    map: Mutex<HashMap<String, Vec<Lease>>>,
}

impl Leases {
    pub(crate) fn new(units: u32, hold: Duration) -> Self {
        Self {
            units: units.max(1),
            hold,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Spends a leased unit of `key` under `set`, or says what the round trip gives back.
    pub(crate) fn take(&self, layer: &str, key: &str, set: &QuotaSet) -> Take {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(leases) = map.get_mut(key) else {
            return Take::Remote { give_back: 0 };
        };
        let Some(i) = leases
            .iter()
            .position(|l| l.set_id == set.id() && *l.layer == *layer)
        else {
            return Take::Remote { give_back: 0 };
        };
        let lease = &mut leases[i];
        if lease.expires > now && lease.left > 0 {
            lease.left -= 1;
            let d = lease.snapshot.with_extra_remaining(u64::from(lease.left));
            return Take::Local(d);
        }
        let give_back = if lease.expires > now { 0 } else { lease.left };
        leases.swap_remove(i);
        if leases.is_empty() {
            map.remove(key);
        }
        Take::Remote { give_back }
    }

    /// Keeps the `taken − 1` units a round trip took beyond the request's own.
    pub(crate) fn keep(
        &self,
        layer: Arc<str>,
        key: String,
        set: &QuotaSet,
        taken: u32,
        snapshot: RateLimitDecision,
    ) {
        if taken <= 1 {
            return;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_LEASES && !map.contains_key(&key) {
            map.retain(|_, ls| {
                ls.retain(|l| l.expires > now);
                !ls.is_empty()
            });
            if map.len() >= MAX_LEASES {
                return;
            }
        }
        let leases = map.entry(key).or_default();
        let lease = Lease {
            layer,
            set_id: set.id(),
            set: set.clone(),
            left: taken - 1,
            expires: now + self.hold,
            snapshot,
        };
        match leases
            .iter_mut()
            .find(|l| l.set_id == set.id() && l.layer == lease.layer)
        {
            // A concurrent round trip took units too: hold them all.
            Some(l) => {
                l.left = l.left.saturating_add(lease.left);
                l.expires = lease.expires;
                l.snapshot = lease.snapshot;
            }
            None => leases.push(lease),
        }
    }

    /// Removes every lease, returning the layers, keys, sets and units to give back.
    pub(crate) fn drain(&self) -> Vec<(Arc<str>, String, QuotaSet, u32)> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.drain()
            .flat_map(|(key, ls)| {
                ls.into_iter()
                    .filter(|l| l.left > 0)
                    .map(move |l| (l.layer, key.clone(), l.set, l.left))
            })
            .collect()
    }

    /// Units held now (expired leases included, until given back).
    pub(crate) fn held(&self) -> u64 {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().flatten().map(|l| u64::from(l.left)).sum()
    }
}
