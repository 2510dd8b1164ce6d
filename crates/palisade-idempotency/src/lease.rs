//! The lock's lease while a handler runs (renewal, release on every early end) and the
//! durable write of its outcome (store retries, the "outcome unknown" marker).

use std::task::Poll;

use bytes::Bytes;
use http::HeaderValue;
use tokio::time::Instant;

use crate::events::IdempotencyEvent;
use crate::service::Shared;
use crate::store::{Store, StoredResponse};

/// Releases the lock if the request ends without a stored response: handler error, panic,
/// or the future being dropped.
pub(crate) struct ReleaseGuard<St: Store> {
    pub(crate) store: St,
    pub(crate) key: String,
    pub(crate) token: u64,
    pub(crate) armed: bool,
}

impl<St: Store> Drop for ReleaseGuard<St> {
    fn drop(&mut self) {
        if !self.armed || self.store.release_now(&self.key, self.token) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = std::mem::take(&mut self.key);
            let token = self.token;
            handle.spawn(async move {
                if let Err(e) = store.release(&key, token).await {
                    tracing::warn!(target: "palisade", error = %e, "idempotency: could not release lock; it expires with its lease");
                }
            });
        }
    }
}

/// Polls `call` to completion, renewing the lease every third of its length meanwhile.
/// The renewal runs concurrently with the handler. A failed renewal (store error) is logged
/// and tried again at the next tick; a refused one (the token no longer holds the lock) stops
/// renewing, since another holder may own the key now.
pub(crate) async fn with_renewal<F, St: Store>(
    call: F,
    store: &St,
    key: &str,
    token: u64,
    lease: std::time::Duration,
) -> F::Output
where
    F: std::future::Future,
{
    let every = (lease / 3).max(std::time::Duration::from_millis(1));
    let mut call = std::pin::pin!(call);
    let mut tick = std::pin::pin!(tokio::time::sleep(every));
    let mut renewing: Option<crate::store::StoreFuture<'_, bool>> = None;
    let mut lost = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = call.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        while !lost {
            if let Some(fut) = renewing.as_mut() {
                match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => {
                        renewing = None;
                        match r {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(target: "palisade", "idempotency: lease lost (another holder may run); renewal stopped");
                                lost = true;
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(target: "palisade", error = %e, "idempotency: lease renewal failed");
                            }
                        }
                    }
                }
            }
            if tick.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            tick.as_mut().reset(Instant::now() + every);
            renewing = Some(store.renew(key, token, lease));
        }
        Poll::Pending
    })
    .await
}

/// Header marking a stored record as "outcome unknown" (see [`OutcomeUnknown`]); never
/// taken from a handler's response.
pub(crate) const OUTCOME_MARKER: http::HeaderName =
    http::HeaderName::from_static("palisade-idempotency-outcome");

pub(crate) fn is_outcome_unknown(record: &StoredResponse) -> bool {
    record
        .headers
        .iter()
        .any(|(n, v)| *n == OUTCOME_MARKER && v == "unknown")
}

pub(crate) fn outcome_unknown_record() -> StoredResponse {
    StoredResponse {
        status: http::StatusCode::INTERNAL_SERVER_ERROR,
        headers: vec![(OUTCOME_MARKER, HeaderValue::from_static("unknown"))],
        body: Bytes::new(),
    }
}

/// How many times the layer tries to store a handler's response before marking the key
/// "outcome unknown" (the marker is then retried with the same backoff until it is written,
/// the lock is lost, or the key's TTL ends).
pub const STORE_ATTEMPTS: u32 = 5;

/// First pause between two attempts to store a response (doubling, capped at a third of
/// the lease).
const STORE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Retries storing `record` with backoff while renewing the lease; after
/// [`STORE_ATTEMPTS`] failures, also tries to mark the key "outcome unknown". Gives up when
/// either is written, the lock is lost, or the key's TTL has passed.
pub(crate) async fn persist<St: Store, K>(
    shared: &Shared<St, K>,
    key: &str,
    token: u64,
    record: &StoredResponse,
) {
    let settings = &shared.settings;
    let store = &shared.store;
    let events = &shared.listeners;
    let give_up = Instant::now() + settings.ttl;
    let cap = (settings.lease / 3).max(std::time::Duration::from_millis(1));
    let mut pause = STORE_BACKOFF.min(cap);
    let marker = outcome_unknown_record();
    for attempt in 2u32.. {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(cap);
        if Instant::now() >= give_up {
            break;
        }
        if let Ok(false) = store.renew(key, token, settings.lease).await {
            events.emit_named(|instance| IdempotencyEvent::LockExpired {
                instance,
                late_finisher: true,
            });
            return;
        }
        match store.complete(key, token, record, settings.ttl).await {
            Ok(true) => return,
            Ok(false) => {
                events.emit_named(|instance| IdempotencyEvent::LockExpired {
                    instance,
                    late_finisher: true,
                });
                return;
            }
            Err(e) => {
                tracing::warn!(target: "palisade", error = %e, attempt, "idempotency: could not store response");
            }
        }
        if attempt >= STORE_ATTEMPTS {
            match store.complete(key, token, &marker, settings.ttl).await {
                Ok(true) => {
                    events.emit_named(|instance| IdempotencyEvent::OutcomeUnknown {
                        instance,
                        recorded: true,
                    });
                    return;
                }
                Ok(false) => return,
                Err(_) => {}
            }
        }
    }
    events.emit_named(|instance| IdempotencyEvent::OutcomeUnknown {
        instance,
        recorded: false,
    });
}
