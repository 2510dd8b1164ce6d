//! [`CacheEvent`]: what the cache decided, for listeners, metrics and `tracing`.

use palisade_core::Event;

/// One decision of the cache layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// Answered from storage with a fresh response.
    Hit,
    /// No usable stored response; the request went upstream.
    Miss,
    /// Answered with a stale stored response (allowed by `max-stale`, `stale-if-error` or
    /// `stale-while-revalidate`).
    Stale,
    /// A stored response was validated upstream (304) and served.
    Revalidated,
    /// A response was stored.
    Stored {
        /// Bytes of the stored variant.
        bytes: usize,
    },
    /// A response was not stored.
    NotStored {
        /// Why (`"no-store"`, `"private"`, `"authorization"`, `"status"`, `"vary-star"`,
        /// `"too-large"`, `"no-freshness"`, `"method"`, `"trailers"`, `"body-error"`).
        reason: &'static str,
    },
    /// Stored responses were invalidated after an unsafe request succeeded.
    Invalidated,
    /// `only-if-cached` found nothing usable: answered 504.
    OnlyIfCachedMiss,
}

impl Event for CacheEvent {
    fn layer(&self) -> &'static str {
        "cache"
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Revalidated => "revalidated",
            Self::Stored { .. } => "stored",
            Self::NotStored { .. } => "not_stored",
            Self::Invalidated => "invalidated",
            Self::OnlyIfCachedMiss => "only_if_cached_miss",
        }
    }
}
