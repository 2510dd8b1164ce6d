//! [`MemoryStore`]: an in-process [`CacheStore`] on `moka`, bounded by bytes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use moka::notification::RemovalCause;
use moka::sync::Cache as Moka;
use palisade_core::Listeners;

use crate::events::CacheEvent;
use crate::store::{CacheStore, Entry};

#[derive(Clone)]
struct Slot {
    entry: Arc<Entry>,
    ttl: Duration,
    weight: u32,
}

/// Moka's hasher for our keys. A key already is a 64-bit SipHash of the primary key, so a
/// second SipHash pass inside moka buys nothing; one keyed multiply-fold mixes it instead
/// (the seed is random per store, so bucket placement stays unpredictable from outside even
/// though the key hash itself is deterministic, which `RedisStore` relies on).
#[derive(Clone)]
struct KeyHasherBuilder {
    seed: u64,
}

impl KeyHasherBuilder {
    fn random() -> Self {
        use std::hash::BuildHasher;
        Self {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }
}

impl std::hash::BuildHasher for KeyHasherBuilder {
    type Hasher = KeyHasher;
    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.seed)
    }
}

/// See [`KeyHasherBuilder`]: `write_u64` is the path taken for a `u64` key.
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write_u64(&mut self, n: u64) {
        // A folded 64×64→128 multiply (as foldhash and wyhash): every input bit reaches
        // the high and low output bits.
        let full = u128::from(n ^ self.0).wrapping_mul(u128::from(0x9E37_79B9_7F4A_7C15_u64));
        self.0 = ((full >> 64) as u64) ^ (full as u64);
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `u64` keys; kept correct for any other input.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

struct PerEntryTtl;

impl moka::Expiry<u64, Slot> for PerEntryTtl {
    fn expire_after_create(&self, _: &u64, slot: &Slot, _: std::time::Instant) -> Option<Duration> {
        Some(slot.ttl)
    }
    fn expire_after_update(
        &self,
        _: &u64,
        slot: &Slot,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl)
    }
}

/// An in-memory store bounded by the bytes of its entries (body, headers and a fixed
/// overhead per entry, see [`StoredResponse::weight`](crate::StoredResponse::weight)), with
/// a time-to-live per entry. Eviction is moka's TinyLFU. Clones share the store.
///
/// ```
/// use palisade_cache::MemoryStore;
/// let store = MemoryStore::new(64 << 20); // 64 MiB
/// assert_eq!(store.bytes_in_use(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Moka<u64, Slot, KeyHasherBuilder>,
    evicted: Arc<AtomicU64>,
    /// The listeners of the layer using the store, for [`CacheEvent::Evicted`].
    listeners: Arc<ArcSwapOption<Listeners<CacheEvent>>>,
    max_bytes: u64,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_bytes", &self.max_bytes)
            .field("bytes_in_use", &self.bytes_in_use())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store holding at most `max_bytes` of entries. An entry larger than
    /// `u32::MAX` bytes is never held.
    pub fn new(max_bytes: u64) -> Self {
        let evicted = Arc::new(AtomicU64::new(0));
        let counter = evicted.clone();
        let listeners: Arc<ArcSwapOption<Listeners<CacheEvent>>> = Arc::default();
        let observers = listeners.clone();
        let cache = Moka::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &u64, slot: &Slot| slot.weight)
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_, slot: Slot, cause| {
                let reason = match cause {
                    RemovalCause::Size => "size",
                    RemovalCause::Expired => "expired",
                    RemovalCause::Explicit | RemovalCause::Replaced => return,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(l) = &*observers.load() {
                    let bytes = u64::from(slot.weight);
                    l.emit_named(|instance| CacheEvent::Evicted {
                        instance,
                        reason,
                        bytes,
                    });
                }
            })
            .build_with_hasher(KeyHasherBuilder::random());
        Self {
            cache,
            evicted,
            listeners,
            max_bytes,
        }
    }

    /// The byte bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes held now, by the store's accounting (pending evictions are applied lazily;
    /// call [`run_pending_tasks`](Self::run_pending_tasks) first for an exact figure).
    pub fn bytes_in_use(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Number of entries (primary keys) held.
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Entries evicted so far for size or age.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Applies pending evictions and expirations now.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    fn get_sync(&self, key: u64) -> Option<Arc<Entry>> {
        self.cache.get(&key).map(|s| s.entry)
    }
}

/// The bytes in use against the bound, for a metrics exporter
/// (`palisade_metrics::watch_usage`).
impl palisade_core::event::UsageGauge for MemoryStore {
    fn used(&self) -> u64 {
        self.cache.weighted_size()
    }
    fn capacity(&self) -> Option<u64> {
        Some(self.max_bytes)
    }
}

impl CacheStore for MemoryStore {
    async fn get(&self, key: u64) -> Option<Arc<Entry>> {
        self.get_sync(key)
    }

    async fn insert(&self, key: u64, entry: Arc<Entry>, ttl: Duration) {
        let Ok(weight) = u32::try_from(entry.weight()) else {
            return;
        };
        if u64::from(weight) > self.max_bytes {
            return;
        }
        self.cache.insert(key, Slot { entry, ttl, weight });
    }

    async fn remove(&self, key: u64) {
        self.cache.invalidate(&key);
    }

    fn get_now(&self, key: u64) -> Option<Option<Arc<Entry>>> {
        Some(self.get_sync(key))
    }

    fn attach(&self, listeners: &Listeners<CacheEvent>, _clock: &crate::Clock) {
        self.listeners.store(Some(Arc::new(listeners.clone())));
    }

    fn bytes_in_use(&self) -> Option<u64> {
        Some(self.cache.weighted_size())
    }

    fn max_bytes(&self) -> Option<u64> {
        Some(self.max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredResponse;
    use bytes::Bytes;

    fn entry(i: u64, body: usize) -> Arc<Entry> {
        let v = StoredResponse {
            status: http::StatusCode::OK,
            version: http::Version::HTTP_11,
            headers: http::HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body]),
            vary: Box::new([]),
            response_time: tokio::time::Instant::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            directives: crate::directives::ResponseDirectives::default(),
        };
        Arc::new(Entry {
            key: format!("example.com/{i}").into(),
            variants: vec![Arc::new(v)],
        })
    }

    #[tokio::test]
    async fn stays_within_its_byte_bound_and_counts_evictions() {
        let store = MemoryStore::new(256 << 10); // 256 KiB
        for i in 0..1000 {
            store
                .insert(i, entry(i, 1024), Duration::from_secs(600))
                .await;
        }
        store.run_pending_tasks();
        let per_entry = entry(0, 1024).weight() as u64;
        assert!(
            store.bytes_in_use() <= store.max_bytes(),
            "{} > {}",
            store.bytes_in_use(),
            store.max_bytes()
        );
        assert!(store.entry_count() <= store.max_bytes() / per_entry);
        assert!(store.evicted() > 0);
        // An entry larger than the whole store is never held.
        store
            .insert(5000, entry(5000, 300 << 10), Duration::from_secs(600))
            .await;
        store.run_pending_tasks();
        assert!(store.get(5000).await.is_none());
        // Removal.
        let kept = (0..1000)
            .find(|i| store.get_now(*i).unwrap().is_some())
            .unwrap();
        store.remove(kept).await;
        assert!(store.get(kept).await.is_none());
    }
}
