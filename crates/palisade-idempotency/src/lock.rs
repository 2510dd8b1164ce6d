//! [`DistributedLock`]: a named lock with a lease and fencing tokens.

use std::time::Duration;

use crate::memory::MemoryStore;
use crate::store::{Begin, StoreFuture};

/// A lock shared by several tasks or instances: [`acquire`](Self::acquire) with a lease,
/// [`renew`](Self::renew) before it runs out, [`release`](Self::release) when done.
///
/// Each successful acquire returns a fencing token larger than every earlier one for that
/// name; pass it to the resource you protect so it can refuse writes from a holder whose
/// lease expired (Kleppmann's fencing). Renew and release only act if the token still holds.
///
/// ```
/// use palisade_idempotency::{DistributedLock, MemoryLock};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let lock = MemoryLock::new();
/// let t1 = lock.acquire("job", Duration::from_secs(10)).await.unwrap().unwrap();
/// assert_eq!(lock.acquire("job", Duration::from_secs(10)).await.unwrap(), None); // held
/// tokio::time::advance(Duration::from_secs(10)).await; // holder crashed: lease ran out
/// let t2 = lock.acquire("job", Duration::from_secs(10)).await.unwrap().unwrap();
/// assert!(t2 > t1);
/// assert!(!lock.release("job", t1).await.unwrap()); // the old holder no longer holds it
/// assert!(lock.renew("job", t2, Duration::from_secs(10)).await.unwrap());
/// assert!(lock.release("job", t2).await.unwrap());
/// # }
/// ```
pub trait DistributedLock: Clone + Send + Sync + 'static {
    /// Takes the lock for `lease` if it is free (or its lease expired): `Some(fencing_token)`,
    /// else `None`.
    fn acquire<'a>(&'a self, name: &'a str, lease: Duration) -> StoreFuture<'a, Option<u64>>;
    /// Extends the lease to `lease` from now if `token` still holds the lock.
    fn renew<'a>(&'a self, name: &'a str, token: u64, lease: Duration) -> StoreFuture<'a, bool>;
    /// Frees the lock if `token` still holds it.
    fn release<'a>(&'a self, name: &'a str, token: u64) -> StoreFuture<'a, bool>;
}

/// A process-local [`DistributedLock`] (on `tokio::time`), e.g. for tests and single instances.
#[derive(Debug, Clone, Default)]
pub struct MemoryLock {
    store: MemoryStore,
}

impl MemoryLock {
    /// An empty lock table.
    pub fn new() -> Self {
        Self::default()
    }

    fn acquire_now(&self, name: &str, lease: Duration) -> Option<u64> {
        match self.store.begin_now(name, &[0; 32], lease, lease) {
            Ok(Begin::Started { fencing_token, .. }) => Some(fencing_token),
            _ => None,
        }
    }
}

impl DistributedLock for MemoryLock {
    fn acquire<'a>(&'a self, name: &'a str, lease: Duration) -> StoreFuture<'a, Option<u64>> {
        let r = self.acquire_now(name, lease);
        Box::pin(std::future::ready(Ok(r)))
    }
    fn renew<'a>(&'a self, name: &'a str, token: u64, lease: Duration) -> StoreFuture<'a, bool> {
        let r = self.store.renew_now(name, token, lease);
        Box::pin(std::future::ready(Ok(r)))
    }
    fn release<'a>(&'a self, name: &'a str, token: u64) -> StoreFuture<'a, bool> {
        let r = self.store.release_sync(name, token);
        Box::pin(std::future::ready(Ok(r)))
    }
}
