//! Coalescing of the cache's own misses: concurrent misses of one key make one upstream
//! call (the *leader*'s); the others (*followers*) wait for it to finish and look the store
//! up again.
//!
//! Followers do not receive a copy of the leader's response: they are answered from
//! storage, so every RFC 9111 rule (`Vary`, request directives, `Authorization`) applies to
//! them as to any later request. When the leader's response was not stored (`no-store`,
//! `private`, too large, an error), the lookup misses and each follower goes upstream on
//! its own. When the leader is cancelled, the first follower to wake takes over as the new
//! leader; nobody waits for a leader that is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// Misses in flight, by primary key hash.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<u64, Arc<Flight>>>,
}

#[derive(Debug)]
struct Flight {
    key: Box<str>,
    tx: watch::Sender<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Pending,
    /// The leader finished (its response stored or not): look the store up again.
    Done,
    /// The leader was dropped before it finished: take over.
    Abandoned,
}

pub(crate) enum Role {
    Leader(LeaderGuard),
    Follower(watch::Receiver<State>),
    /// Another key with the same hash is in flight: not coalesced.
    Alone,
}

impl Flights {
    /// Misses in flight now.
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Becomes the leader of `hash` or follows the one in flight.
    pub(crate) fn join(self: &Arc<Self>, hash: u64, key: &str) -> Role {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = map.get(&hash) {
            return if &*f.key == key {
                Role::Follower(f.tx.subscribe())
            } else {
                Role::Alone
            };
        }
        let (tx, _) = watch::channel(State::Pending);
        let flight = Arc::new(Flight {
            key: key.into(),
            tx,
        });
        map.insert(hash, flight.clone());
        Role::Leader(LeaderGuard {
            flights: self.clone(),
            hash,
            flight,
        })
    }
}

/// Waits until the leader finished or was dropped.
pub(crate) async fn wait(mut rx: watch::Receiver<State>) -> State {
    match rx.wait_for(|s| *s != State::Pending).await {
        Ok(s) => *s,
        Err(_) => State::Abandoned,
    }
}

/// The leader's hold on its flight: removes it and wakes the followers when dropped, with
/// [`State::Done`] after [`finish`](Self::finish), else [`State::Abandoned`].
pub(crate) struct LeaderGuard {
    flights: Arc<Flights>,
    hash: u64,
    flight: Arc<Flight>,
}

impl LeaderGuard {
    /// The leader's response is stored (or will not be): followers look up again.
    pub(crate) fn finish(self) {
        self.flight.tx.send_replace(State::Done);
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        {
            let mut map = self
                .flights
                .map
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if map
                .get(&self.hash)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.hash);
            }
        }
        // After `finish` this is a no-op (`Done` stays); otherwise the followers take over.
        self.flight.tx.send_if_modified(|s| {
            if *s == State::Pending {
                *s = State::Abandoned;
                true
            } else {
                false
            }
        });
    }
}
