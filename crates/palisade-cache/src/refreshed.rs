//! [`Refreshed<T>`]: a materialized view — a value recomputed by a loader on an interval
//! and on demand; readers get the last good snapshot without locking.
//!
//! A failing refresh keeps the previous snapshot; [`Refreshed::age`] then grows and
//! [`Refreshed::consecutive_failures`] counts, so staleness can be exported as a gauge.
//! The background task stops when the last handle is dropped.
//!
//! ```
//! use palisade_cache::Refreshed;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let view = Refreshed::start(Duration::from_secs(30), || async {
//!     Ok::<_, std::convert::Infallible>(vec![1, 2, 3]) // e.g. a query
//! })
//! .await
//! .unwrap();
//! assert_eq!(*view.get(), vec![1, 2, 3]);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use palisade_core::BoxError;
use tokio::time::Instant;

type Loader<T> =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync;

struct Inner<T> {
    value: ArcSwap<T>,
    loaded_at: ArcSwap<Instant>,
    failures: AtomicU64,
    loader: Box<Loader<T>>,
}

/// A value refreshed in the background; see the [module docs](self). Clones share it.
pub struct Refreshed<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Refreshed<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Refreshed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refreshed")
            .field("age", &self.age())
            .field("consecutive_failures", &self.consecutive_failures())
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Refreshed<T> {
    /// Loads the first value (failing if that load fails), then refreshes it every
    /// `interval` (at least 1 ms) in a spawned task.
    pub async fn start<F, Fut, E>(interval: Duration, loader: F) -> Result<Self, BoxError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let loader: Box<Loader<T>> = Box::new(move || {
            let fut = loader();
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        let first = loader().await?;
        let inner = Arc::new(Inner {
            value: ArcSwap::from_pointee(first),
            loaded_at: ArcSwap::from_pointee(Instant::now()),
            failures: AtomicU64::new(0),
            loader,
        });
        let weak: Weak<Inner<T>> = Arc::downgrade(&inner);
        let interval = interval.max(Duration::from_millis(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                let _ = Self { inner }.refresh_now().await;
            }
        });
        Ok(Self { inner })
    }

    /// The last good snapshot (lock-free).
    pub fn get(&self) -> Arc<T> {
        self.inner.value.load_full()
    }

    /// Recomputes the value now; on failure the previous snapshot stays.
    pub async fn refresh_now(&self) -> Result<(), BoxError> {
        match (self.inner.loader)().await {
            Ok(v) => {
                self.inner.value.store(Arc::new(v));
                self.inner.loaded_at.store(Arc::new(Instant::now()));
                self.inner.failures.store(0, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.inner.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "palisade", layer = "refreshed", error = %e, "refresh failed; keeping the previous snapshot");
                Err(e)
            }
        }
    }
}

impl<T> Refreshed<T> {
    /// Time since the snapshot was loaded (its staleness).
    pub fn age(&self) -> Duration {
        self.inner.loaded_at.load().elapsed()
    }

    /// Refreshes that failed since the last good one.
    pub fn consecutive_failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn refreshes_on_interval_and_keeps_last_good_snapshot_on_failure() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let view = Refreshed::start(Duration::from_secs(10), move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if (3..=4).contains(&n) {
                    Err("db down")
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(*view.get(), 1);
        tokio::time::sleep(Duration::from_millis(10_001)).await;
        assert_eq!(*view.get(), 2);
        assert_eq!(view.age(), Duration::from_millis(1));
        // Two failing refreshes: snapshot 2 stays, staleness grows.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(*view.get(), 2);
        assert_eq!(view.consecutive_failures(), 2);
        assert_eq!(view.age(), Duration::from_millis(20_001));
        // On demand.
        view.refresh_now().await.unwrap();
        assert_eq!((*view.get(), view.consecutive_failures()), (5, 0));
        assert_eq!(view.age(), Duration::ZERO);
        // Dropping the last handle stops the task.
        drop(view);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_first_load_is_an_error() {
        let r =
            Refreshed::<u32>::start(Duration::from_secs(1), || async { Err::<u32, _>("no") }).await;
        assert_eq!(r.unwrap_err().to_string(), "no");
    }
}
