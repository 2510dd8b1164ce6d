//! The write side: a `Service<(K, V)>` that acknowledges once queued.

use super::config::WriteBehindConfig;
use super::queue::{Pushed, Queue};
use super::worker::WriteBehindWorker;
use futures_util::future::{BoxFuture, Either, Ready, ready};
use palisade_core::ConfigError;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::sync::Notify;
use tower_service::Service;

/// Why a write was not queued, or what shutdown could not flush.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteBehindError {
    /// [`WriteBehind::shutdown`] was called: no more writes are taken.
    Closed,
    /// [`WriteBehind::try_write`] found the queue full.
    Full,
    /// At shutdown, this many acknowledged writes could not be flushed (the store kept
    /// failing after every attempt).
    Lost(u64),
}

impl fmt::Display for WriteBehindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("write-behind queue is closed"),
            Self::Full => f.write_str("write-behind queue is full"),
            Self::Lost(n) => write!(
                f,
                "{n} acknowledged writes could not be flushed at shutdown"
            ),
        }
    }
}

impl std::error::Error for WriteBehindError {}

/// Counters of a write-behind queue, read with [`WriteBehind::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehindStats {
    /// Writes acknowledged.
    pub accepted: u64,
    /// Writes that replaced a queued value of the same key.
    pub coalesced: u64,
    /// Writes the store accepted.
    pub flushed: u64,
    /// Batches the store accepted.
    pub batches: u64,
    /// Failed store calls (each retry counts).
    pub failed_attempts: u64,
    /// Writes dropped at shutdown because the store kept failing.
    pub lost: u64,
    /// Keys queued now.
    pub queued: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) flushed: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) lost: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Shared<K, V> {
    pub(crate) queue: Mutex<Queue<K, V>>,
    pub(crate) capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) closed: AtomicBool,
    /// Room was made in the queue.
    pub(crate) space: Notify,
    /// A full batch is queued, or shutdown started.
    pub(crate) flush_now: Notify,
    /// The worker finished its last flush.
    pub(crate) done: Notify,
    pub(crate) finished: AtomicBool,
    pub(crate) counters: Counters,
}

impl<K, V> Shared<K, V> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue<K, V>> {
        // A panic while holding the lock cannot leave the queue half-updated (each
        // operation is one map/deque step), so a poisoned lock is still usable.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The write side of a write-behind queue: `Service<(K, V)>`, `Clone` (clones share the
/// queue), answering `Ok(())` once the write is queued. See the
/// [module docs](crate::write_behind).
pub struct WriteBehind<K, V> {
    shared: Arc<Shared<K, V>>,
}

impl<K, V> Clone for WriteBehind<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K, V> fmt::Debug for WriteBehind<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehind")
            .field("capacity", &self.shared.capacity)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, V> WriteBehind<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// A queue in front of `store` and the worker that flushes it (spawn
    /// [`WriteBehindWorker::run`]). Fails if `config` holds a bad value.
    pub fn new<S>(
        store: S,
        config: &WriteBehindConfig,
    ) -> Result<(Self, WriteBehindWorker<S, K, V>), ConfigError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new()),
            capacity: config.capacity,
            batch_size: config.batch_size,
            closed: AtomicBool::new(false),
            space: Notify::new(),
            flush_now: Notify::new(),
            done: Notify::new(),
            finished: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let worker = WriteBehindWorker::new(shared.clone(), store, config);
        Ok((Self { shared }, worker))
    }

    /// Queues the write, or gives it back when the queue is full.
    fn push(&self, key: K, value: V) -> Result<(), (WriteBehindError, Option<(K, V)>)> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err((WriteBehindError::Closed, None));
        }
        let (pushed, len) = {
            let mut q = self.shared.lock();
            let pushed = q.push(key, value, self.shared.capacity);
            (pushed, q.len())
        };
        let c = &self.shared.counters;
        match pushed {
            Pushed::Full(k, v) => {
                self.shared.flush_now.notify_one();
                return Err((WriteBehindError::Full, Some((k, v))));
            }
            Pushed::Coalesced => {
                c.coalesced.fetch_add(1, Ordering::Relaxed);
            }
            Pushed::Added => {
                if len >= self.shared.batch_size {
                    self.shared.flush_now.notify_one();
                }
            }
        }
        c.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Queues a write without waiting: [`WriteBehindError::Full`] if the queue is full and
    /// the key is not queued already.
    pub fn try_write(&self, key: K, value: V) -> Result<(), WriteBehindError> {
        self.push(key, value).map_err(|(e, _)| e)
    }

    /// Queues a write, waiting for room while the queue is full (backpressure).
    pub async fn write(&self, key: K, value: V) -> Result<(), WriteBehindError> {
        let mut write = (key, value);
        loop {
            let space = self.shared.space.notified();
            let mut space = std::pin::pin!(space);
            space.as_mut().enable();
            match self.push(write.0, write.1) {
                Ok(()) => return Ok(()),
                Err((_, Some(back))) => write = back,
                Err((e, None)) => return Err(e),
            }
            space.await;
        }
    }

    /// Stops taking writes, wakes the worker to flush everything queued and waits until it
    /// has. `Err(Lost(n))` if `n` acknowledged writes could not be stored.
    pub async fn shutdown(&self) -> Result<(), WriteBehindError> {
        let done = self.shared.done.notified();
        let mut done = std::pin::pin!(done);
        done.as_mut().enable();
        self.shared.closed.store(true, Ordering::Release);
        self.shared.flush_now.notify_one();
        self.shared.space.notify_waiters();
        if !self.shared.finished.load(Ordering::Acquire) {
            done.await;
        }
        match self.shared.counters.lost.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(WriteBehindError::Lost(n)),
        }
    }

    /// The counters.
    pub fn stats(&self) -> WriteBehindStats {
        let c = &self.shared.counters;
        WriteBehindStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            flushed: c.flushed.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            queued: self.shared.lock().len() as u64,
        }
    }
}

impl<K, V> Service<(K, V)> for WriteBehind<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    type Response = ();
    type Error = WriteBehindError;
    type Future = Either<
        Ready<Result<(), WriteBehindError>>,
        BoxFuture<'static, Result<(), WriteBehindError>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.shared.closed.load(Ordering::Acquire) {
            Poll::Ready(Err(WriteBehindError::Closed))
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, (key, value): (K, V)) -> Self::Future {
        // The common case (room, or a coalesced key) answers at once; a full queue waits.
        match self.push(key, value) {
            Err((_, Some((key, value)))) => {
                let this = self.clone();
                Either::Right(Box::pin(async move { this.write(key, value).await }))
            }
            done => Either::Left(ready(done.map_err(|(e, _)| e))),
        }
    }
}
