//! [`CacheEvent`]: what the cache decided, for listeners, metrics and `tracing`.

use palisade_core::event::{Event, InstanceName};

/// One decision of the cache layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// Answered from storage with a fresh response.
    Hit {
        /// The cache layer's name.
        instance: InstanceName,
    },
    /// No usable stored response; the request went upstream.
    Miss {
        /// The cache layer's name.
        instance: InstanceName,
    },
    /// Answered with a stale stored response (allowed by `max-stale`, `stale-if-error` or
    /// `stale-while-revalidate`).
    Stale {
        /// The cache layer's name.
        instance: InstanceName,
    },
    /// A miss waited for a concurrent request's upstream call of the same key instead of
    /// making its own, then looked the store up again (followed by that lookup's event:
    /// usually [`Hit`](Self::Hit)).
    Coalesced {
        /// The cache layer's name.
        instance: InstanceName,
    },
    /// The store dropped an entry to stay within its byte bound (`reason` `"size"`) or
    /// because its time to live ran out (`"expired"`).
    Evicted {
        /// The cache layer's name.
        instance: InstanceName,
        /// `"size"` or `"expired"`.
        reason: &'static str,
        /// Bytes the entry was counted for.
        bytes: u64,
    },
    /// A stored response was validated upstream (304) and served.
    Revalidated {
        /// The cache layer's name.
        instance: InstanceName,
    },
    /// A response was stored.
    Stored {
        /// The cache layer's name.
        instance: InstanceName,
        /// Bytes of the stored variant.
        bytes: usize,
    },
    /// A response was not stored.
    NotStored {
        /// The cache layer's name.
        instance: InstanceName,
        /// Why (`"no-store"`, `"private"`, `"authorization"`, `"status"`, `"vary-star"`,
        /// `"too-large"`, `"no-freshness"`, `"method"`, `"trailers"`, `"body-error"`).
        reason: &'static str,
    },
    /// Stored responses were invalidated after an unsafe request succeeded.
    Invalidated {
        /// The cache layer's name.
        instance: InstanceName,
    },
    /// `only-if-cached` found nothing usable: answered 504.
    OnlyIfCachedMiss {
        /// The cache layer's name.
        instance: InstanceName,
    },
}

impl Event for CacheEvent {
    /// Why a response was not stored.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::NotStored { reason, .. } | Self::Evicted { reason, .. } => Some(reason),
            _ => None,
        }
    }
    /// Bytes stored or evicted.
    fn count(&self) -> Option<u64> {
        match self {
            Self::Stored { bytes, .. } => Some(*bytes as u64),
            Self::Evicted { bytes, .. } => Some(*bytes),
            _ => None,
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::Hit { instance, .. }
            | Self::Miss { instance, .. }
            | Self::Stale { instance, .. }
            | Self::Revalidated { instance, .. }
            | Self::Coalesced { instance, .. }
            | Self::Evicted { instance, .. }
            | Self::Stored { instance, .. }
            | Self::NotStored { instance, .. }
            | Self::Invalidated { instance, .. }
            | Self::OnlyIfCachedMiss { instance, .. } => instance,
        }
    }
    fn layer(&self) -> &'static str {
        "cache"
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Hit { .. } => "hit",
            Self::Miss { .. } => "miss",
            Self::Stale { .. } => "stale",
            Self::Revalidated { .. } => "revalidated",
            Self::Coalesced { .. } => "coalesced",
            Self::Evicted { .. } => "evicted",
            Self::Stored { .. } => "stored",
            Self::NotStored { .. } => "not_stored",
            Self::Invalidated { .. } => "invalidated",
            Self::OnlyIfCachedMiss { .. } => "only_if_cached_miss",
        }
    }
}
