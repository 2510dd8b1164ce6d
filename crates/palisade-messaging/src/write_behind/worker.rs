//! The flushing side: batches queued writes into the store.

use super::config::WriteBehindConfig;
use super::service::Shared;
use palisade_core::BoxError;
use std::fmt;
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tower_service::Service;

/// Flushes a [`WriteBehind`](super::WriteBehind) queue into its store; spawn
/// [`run`](Self::run) once. It returns after [`WriteBehind::shutdown`](super::WriteBehind::shutdown)
/// once everything queued was flushed (or counted as lost).
pub struct WriteBehindWorker<S, K, V> {
    shared: Arc<Shared<K, V>>,
    store: S,
    flush_interval: Duration,
    max_attempts: u32,
    backoff: Duration,
}

impl<S, K, V> fmt::Debug for WriteBehindWorker<S, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehindWorker")
            .field("flush_interval", &self.flush_interval)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<S, K, V> WriteBehindWorker<S, K, V> {
    pub(crate) fn new(shared: Arc<Shared<K, V>>, store: S, config: &WriteBehindConfig) -> Self {
        Self {
            shared,
            store,
            flush_interval: config.flush_interval,
            max_attempts: config.max_attempts,
            backoff: config.backoff,
        }
    }
}

impl<S, K, V> WriteBehindWorker<S, K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
    S: Service<Vec<(K, V)>>,
    S::Error: Into<BoxError>,
{
    /// Flushes until shutdown: a batch whenever `batch_size` keys are queued, and whatever
    /// is queued every `flush_interval`.
    pub async fn run(mut self) {
        let mut next = Instant::now() + self.flush_interval;
        loop {
            tokio::select! {
                () = self.shared.flush_now.notified() => {}
                () = tokio::time::sleep_until(next) => {
                    next = Instant::now() + self.flush_interval;
                }
            }
            let closing = self.shared.closed.load(Ordering::Acquire);
            self.flush(closing).await;
            if closing && self.shared.lock().len() == 0 {
                break;
            }
        }
        self.shared.finished.store(true, Ordering::Release);
        self.shared.done.notify_waiters();
    }

    /// Flushes batches: while full ones are queued, or everything when `all`.
    async fn flush(&mut self, all: bool) {
        let mut first = true;
        loop {
            let batch = {
                let mut q = self.shared.lock();
                let full = q.len() >= self.shared.batch_size;
                if !(first || full || all) {
                    return;
                }
                q.take(self.shared.batch_size)
            };
            first = false;
            if batch.is_empty() {
                return;
            }
            self.shared.space.notify_waiters();
            let n = batch.len() as u64;
            let result = self.store_with_retry(&batch).await;
            let c = &self.shared.counters;
            match result {
                Ok(()) => {
                    c.flushed.fetch_add(n, Ordering::Relaxed);
                    c.batches.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if all => {
                    tracing::error!(target: "palisade::messaging", error = %e, writes = n, "write-behind lost writes at shutdown");
                    c.lost.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(target: "palisade::messaging", error = %e, writes = n, "write-behind batch failed; requeued");
                    let mut q = self.shared.lock();
                    for (k, v) in batch {
                        q.requeue(k, v);
                    }
                    return; // try again at the next flush
                }
            }
        }
    }

    async fn store_with_retry(&mut self, batch: &[(K, V)]) -> Result<(), BoxError> {
        let mut delay = self.backoff;
        let mut attempt = 1;
        loop {
            let result = async {
                poll_fn(|cx| self.store.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                self.store.call(batch.to_vec()).await.map_err(Into::into)
            }
            .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) => {
                    self.shared
                        .counters
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    if attempt >= self.max_attempts {
                        return Err(e);
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
            attempt += 1;
        }
    }
}
