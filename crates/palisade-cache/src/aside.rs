//! [`ValueCache`]: cache-aside for non-HTTP values — `get_or_load(key, ttl, loader)` with
//! concurrent loads of one key coalesced into one loader call.
//!
//! Values live in a `moka` cache bounded by entry count; freshness is checked on tokio's
//! clock (tests run on paused time). A failed load is not cached: the caller that ran the
//! loader gets its error, the callers that waited for it get [`LoadFailed`]. When the
//! loading caller is cancelled, a waiting caller takes over.
//!
//! ```
//! use palisade_cache::ValueCache;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let users: ValueCache<u64, String> = ValueCache::new(10_000);
//! let name = users
//!     .get_or_load(7, Duration::from_secs(60), || async { Ok::<_, std::io::Error>("ada".to_owned()) })
//!     .await
//!     .unwrap();
//! assert_eq!(name, "ada");
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use palisade_core::BoxError;
use tokio::sync::watch;
use tokio::time::Instant;

/// What [`ValueCache::warm`] did for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarmOutcome {
    /// The loader ran and the value is stored.
    Loaded,
    /// A fresh value was already stored.
    Skipped,
    /// The loader failed, with this message.
    Failed(String),
}

/// The error of callers that waited for another caller's failed load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailed {
    /// The loader's error message.
    pub message: String,
}

impl fmt::Display for LoadFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "coalesced load failed: {}", self.message)
    }
}

impl std::error::Error for LoadFailed {}

#[derive(Clone)]
struct Stored<V> {
    value: V,
    expires: Instant,
}

type Outcome<V> = Option<Result<V, LoadFailed>>;

struct Inner<K, V> {
    store: moka::sync::Cache<K, Stored<V>>,
    flights: Mutex<HashMap<K, watch::Sender<Outcome<V>>>>,
}

/// Cache-aside with coalesced loads; see the [module docs](self). Clones share it.
pub struct ValueCache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for ValueCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for ValueCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueCache").finish_non_exhaustive()
    }
}

/// Removes the flight when the loading caller finishes or is cancelled; followers then see
/// the channel close and retry (one of them becomes the loader).
struct FlightGuard<'a, K: Hash + Eq, V> {
    flights: &'a Mutex<HashMap<K, watch::Sender<Outcome<V>>>>,
    key: Option<K>,
}

impl<K: Hash + Eq, V> Drop for FlightGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        }
    }
}

impl<K, V> ValueCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `max_entries` values.
    pub fn new(max_entries: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: moka::sync::Cache::new(max_entries),
                flights: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The value of `key` if stored and fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        self.inner
            .store
            .get(key)
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.value)
    }

    /// Removes `key`.
    pub fn invalidate(&self, key: &K) {
        self.inner.store.invalidate(key);
    }

    /// The fresh value of `key`, or the loader's, stored for `ttl`. Concurrent calls for one
    /// key run the loader once.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: K,
        ttl: Duration,
        loader: F,
    ) -> Result<V, BoxError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        let mut loader = Some(loader);
        loop {
            if let Some(v) = self.get(&key) {
                return Ok(v);
            }
            let mut rx = {
                let mut flights = self
                    .inner
                    .flights
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(tx) = flights.get(&key) {
                    Some(tx.subscribe())
                } else {
                    flights.insert(key.clone(), watch::channel(None).0);
                    None
                }
            };
            if let Some(rx) = rx.as_mut() {
                match rx.wait_for(Option::is_some).await {
                    Ok(outcome) => {
                        return match outcome.clone() {
                            Some(Ok(v)) => Ok(v),
                            Some(Err(e)) => Err(e.into()),
                            None => continue,
                        };
                    }
                    // The loading caller was cancelled: try again (maybe as the loader).
                    Err(_) => continue,
                }
            }
            let guard = FlightGuard {
                flights: &self.inner.flights,
                key: Some(key.clone()),
            };
            let Some(load) = loader.take() else {
                // Unreachable in practice: a caller loads at most once.
                drop(guard);
                continue;
            };
            let result = load().await.map_err(Into::into);
            let outcome = match &result {
                Ok(v) => {
                    self.inner.store.insert(
                        key.clone(),
                        Stored {
                            value: v.clone(),
                            expires: Instant::now() + ttl,
                        },
                    );
                    Ok(v.clone())
                }
                Err(e) => Err(LoadFailed {
                    message: e.to_string(),
                }),
            };
            if let Some(tx) = self
                .inner
                .flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
            {
                tx.send_replace(Some(outcome));
            }
            drop(guard);
            return result;
        }
    }
}

impl<K, V> ValueCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Cache warming: loads every key not already fresh, at most `concurrency` (at least 1)
    /// at a time, and reports each key's outcome in the order given.
    pub async fn warm<I, F, Fut, E>(
        &self,
        keys: I,
        ttl: Duration,
        concurrency: usize,
        loader: F,
    ) -> Vec<(K, WarmOutcome)>
    where
        I: IntoIterator<Item = K>,
        F: Fn(K) -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        use futures_util::StreamExt;
        let loader = &loader;
        futures_util::stream::iter(keys)
            .map(|key| async move {
                if self.get(&key).is_some() {
                    return (key, WarmOutcome::Skipped);
                }
                let mut loaded = false;
                let result = self
                    .get_or_load(key.clone(), ttl, || {
                        loaded = true;
                        loader(key.clone())
                    })
                    .await;
                let outcome = match result {
                    Ok(_) if loaded => WarmOutcome::Loaded,
                    Ok(_) => WarmOutcome::Skipped,
                    Err(e) => WarmOutcome::Failed(e.to_string()),
                };
                (key, outcome)
            })
            .buffered(concurrency.max(1))
            .collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn concurrent_loads_of_one_key_run_the_loader_once_and_ttl_expires() {
        let cache: ValueCache<&'static str, u32> = ValueCache::new(100);
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load("k", Duration::from_secs(30), || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            Ok::<_, BoxError>(42)
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(cache.get(&"k"), Some(42));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(cache.get(&"k"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_cached_and_followers_get_load_failed() {
        let cache: ValueCache<u8, u8> = ValueCache::new(10);
        let leader = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load(1, Duration::from_secs(5), || async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Err::<u8, _>("db down")
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let follower =
            cache.get_or_load(1, Duration::from_secs(5), || async { Ok::<_, BoxError>(9) });
        let err = follower.await.unwrap_err();
        assert_eq!(err.downcast_ref::<LoadFailed>().unwrap().message, "db down");
        assert_eq!(leader.await.unwrap().unwrap_err().to_string(), "db down");
        let v = cache
            .get_or_load(1, Duration::from_secs(5), || async { Ok::<_, BoxError>(9) })
            .await
            .unwrap();
        assert_eq!(v, 9);
    }

    #[tokio::test(start_paused = true)]
    async fn warm_reports_each_key_and_limits_concurrency() {
        let cache: ValueCache<u32, u32> = ValueCache::new(100);
        cache
            .get_or_load(2, Duration::from_secs(60), || async {
                Ok::<_, BoxError>(20)
            })
            .await
            .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let outcomes = cache
            .warm(1..=6, Duration::from_secs(60), 2, |k| {
                let (running, peak) = (running.clone(), peak.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    if k == 5 {
                        Err::<u32, BoxError>("bad key".into())
                    } else {
                        Ok(k * 10)
                    }
                }
            })
            .await;
        assert_eq!(
            outcomes,
            vec![
                (1, WarmOutcome::Loaded),
                (2, WarmOutcome::Skipped),
                (3, WarmOutcome::Loaded),
                (4, WarmOutcome::Loaded),
                (5, WarmOutcome::Failed("bad key".into())),
                (6, WarmOutcome::Loaded),
            ]
        );
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(cache.get(&6), Some(60));
        assert_eq!(cache.get(&5), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_loader_hands_over() {
        let cache: ValueCache<u8, u8> = ValueCache::new(10);
        let leader = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load(1, Duration::from_secs(5), || async {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        Ok::<_, BoxError>(1)
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let follower = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load(1, Duration::from_secs(5), || async { Ok::<_, BoxError>(2) })
                    .await
            })
        };
        tokio::task::yield_now().await;
        leader.abort();
        let v = tokio::time::timeout(Duration::from_secs(1), follower)
            .await
            .expect("follower hangs")
            .unwrap()
            .unwrap();
        assert_eq!(v, 2);
    }
}
