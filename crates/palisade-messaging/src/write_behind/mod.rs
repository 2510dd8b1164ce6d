//! Write-behind: acknowledge writes once queued, flush them to the store in batches.
//!
//! [`WriteBehind`] is a `Service<(K, V)>` that answers as soon as the write is in its
//! bounded queue; its [`WriteBehindWorker`] flushes the queue to a store
//! `Service<Vec<(K, V)>>` (a database batch upsert, a cache) in the background:
//!
//! - **Coalescing.** A write to a key that is already queued replaces the queued value (the
//!   store sees the last value only) and takes no extra room.
//! - **Batches by size and interval.** A flush starts when `batch_size` keys are queued or
//!   `flush_interval` has passed with anything queued; a batch holds at most `batch_size`
//!   writes, oldest key first.
//! - **Retry.** A failed batch is retried `max_attempts` times with doubling backoff; if it
//!   still fails, its writes go back in the queue (unless a newer value for the key has
//!   arrived) and are tried again at the next flush.
//! - **Backpressure.** The queue holds at most `capacity` distinct keys; a write to a new key
//!   while it is full waits for room ([`WriteBehind::try_write`] fails at once instead).
//! - **Shutdown.** [`WriteBehind::shutdown`] stops new writes, lets the worker flush
//!   everything queued and waits for it; no acknowledged write is lost unless the store
//!   keeps failing, and those are counted and returned.
//!
//! **Crash window.** Writes live in memory until flushed: a process crash loses what was
//! queued (at most `capacity` keys) plus the batch in flight, i.e. about one
//! `flush_interval` of writes. Use the [outbox](crate) pattern where that is not acceptable.
//!
//! ```
//! use palisade_messaging::write_behind::{WriteBehind, WriteBehindConfig};
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let stored = Arc::new(Mutex::new(Vec::new()));
//! let sink = stored.clone();
//! let store = service_fn(move |batch: Vec<(String, u64)>| {
//!     sink.lock().unwrap().push(batch);
//!     async { Ok::<_, std::io::Error>(()) }
//! });
//! let config = WriteBehindConfig::new().flush_interval(Duration::from_millis(100));
//! let (writes, worker) = WriteBehind::new(store, &config).unwrap();
//! tokio::spawn(worker.run());
//! writes.clone().oneshot(("counter".into(), 1)).await.unwrap(); // acknowledged once queued
//! writes.clone().oneshot(("counter".into(), 2)).await.unwrap(); // coalesced
//! writes.shutdown().await.unwrap();                              // flushes, then stops
//! assert_eq!(*stored.lock().unwrap(), vec![vec![("counter".to_owned(), 2)]]);
//! # }
//! ```

mod config;
mod queue;
mod service;
mod worker;

pub use self::config::WriteBehindConfig;
pub use self::service::{WriteBehind, WriteBehindError, WriteBehindStats};
pub use self::worker::WriteBehindWorker;
