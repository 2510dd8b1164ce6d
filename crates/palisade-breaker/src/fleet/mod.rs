//! Fleet mode: one breaker shared by every instance through Redis (see the crate docs,
//! "Sharing state across a fleet"). This module holds what the request path touches: the
//! outcomes waiting for the next flush (three atomics) and whether the fleet decides (one
//! atomic flag). The flush itself, off the request path, is in `redis.rs`.

// Without the `redis` feature nothing turns fleet mode on.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use crate::window::Totals;

#[cfg(feature = "redis")]
pub(crate) mod redis;

/// The request path's side of fleet mode.
#[derive(Debug)]
pub(crate) struct Fleet {
    /// Outcomes recorded in CLOSED since the last flush.
    calls: AtomicU32,
    failed: AtomicU32,
    slow: AtomicU32,
    /// The last flush reached Redis: the fleet decides, so an outcome that trips the local
    /// window takes no lock.
    connected: AtomicBool,
}

impl Fleet {
    pub(crate) fn new() -> Self {
        Self {
            calls: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            slow: AtomicU32::new(0),
            connected: AtomicBool::new(false),
        }
    }

    /// Counts one outcome for the next flush: one to three atomic adds.
    #[inline]
    pub(crate) fn add(&self, failed: bool, slow: bool) {
        if failed {
            self.failed.fetch_add(1, Relaxed);
        }
        if slow {
            self.slow.fetch_add(1, Relaxed);
        }
        self.calls.fetch_add(1, Relaxed);
    }

    /// Takes the outcomes counted since the last flush.
    pub(crate) fn take(&self) -> Totals {
        // `calls` last, as `add` adds it last. A racing outcome's flag taken without its
        // call is put back, to travel with its call in the next flush.
        let failed = self.failed.swap(0, Relaxed);
        let slow = self.slow.swap(0, Relaxed);
        let calls = self.calls.swap(0, Relaxed);
        for (n, counter) in [(failed, &self.failed), (slow, &self.slow)] {
            if n > calls {
                counter.fetch_add(n - calls, Relaxed);
            }
        }
        Totals {
            calls,
            failed: failed.min(calls),
            slow: slow.min(calls),
        }
    }

    #[inline]
    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    pub(crate) fn set_connected(&self, on: bool) {
        self.connected.store(on, Relaxed);
    }
}
