//! Inbox mode: process each message id once (seed pattern 23).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use palisade_core::{BoxError, IdempotencyConflict, Listeners, StoreUnavailable};
use tower_layer::Layer;
use tower_service::Service;

use crate::events::IdempotencyEvent;
use crate::layer::{DEFAULT_LEASE, DEFAULT_STORE_RETRY_AFTER, DEFAULT_TTL};
use crate::store::{Begin, Store, StoredResponse};

/// What [`Inbox`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxOutcome<R> {
    /// First delivery: the inner service processed it.
    Processed(R),
    /// A duplicate of a processed message: acknowledged without effect.
    Duplicate,
}

impl<R> InboxOutcome<R> {
    /// Whether this delivery was a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate)
    }
}

struct Config<St, F> {
    store: St,
    id: Arc<F>,
    prefix: String,
    ttl: Duration,
    lease: Duration,
    listeners: Listeners<IdempotencyEvent>,
}

/// Layer for [`Inbox`]: message consumers that process each message id once.
///
/// The id comes from a closure `Fn(&M) -> String`. A delivery whose id was processed
/// within `ttl` (default 24 h) is answered [`InboxOutcome::Duplicate`] without calling the
/// inner service. A delivery whose id is being processed right now fails with
/// [`IdempotencyConflict`] (do not acknowledge it; the broker redelivers later). If the inner
/// service fails, the id is released so a redelivery processes it.
///
/// ```
/// use palisade_idempotency::{InboxLayer, InboxOutcome, MemoryStore};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = InboxLayer::new(MemoryStore::new(), |m: &(u32, &'static str)| m.0.to_string());
/// let svc = layer.layer(service_fn(|m: (u32, &'static str)| async move { Ok::<_, std::convert::Infallible>(m.1.len()) }));
/// assert_eq!(svc.clone().oneshot((7, "hello")).await.unwrap(), InboxOutcome::Processed(5));
/// assert_eq!(svc.oneshot((7, "hello")).await.unwrap(), InboxOutcome::Duplicate);
/// # }
/// ```
pub struct InboxLayer<St, F> {
    store: St,
    id: Arc<F>,
    prefix: String,
    ttl: Duration,
    lease: Duration,
    listeners: Listeners<IdempotencyEvent>,
}

impl<St: Clone, F> Clone for InboxLayer<St, F> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            id: self.id.clone(),
            prefix: self.prefix.clone(),
            ttl: self.ttl,
            lease: self.lease,
            listeners: self.listeners.clone(),
        }
    }
}

impl<St: fmt::Debug, F> fmt::Debug for InboxLayer<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxLayer")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<St, F> InboxLayer<St, F> {
    /// An inbox over `store`, taking each message's id from `id`.
    pub fn new(store: St, id: F) -> Self {
        Self {
            store,
            id: Arc::new(id),
            prefix: "inbox:".to_owned(),
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            listeners: Listeners::new().named("inbox"),
        }
    }

    /// Namespace of this consumer's ids (default `inbox:`), to separate consumers sharing a
    /// store. The store key is `in1/` escape(prefix) `/` escape(id).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// How long processed ids are remembered (default 24 h; clamped to 1 ms–30 days).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.clamp(Duration::from_millis(1), crate::MAX_TTL);
        self
    }
    /// How long a crashed consumer blocks an id (default 60 s; clamped to 1 ms–ttl when the
    /// layer is applied). Renewed every third of its length while the consumer runs.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(Duration::from_millis(1), crate::MAX_TTL);
        self
    }
    /// The inbox's instance name, carried by its events. Default `"inbox"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<palisade_core::InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }
    /// Adds an event listener (`Executed`, `Replayed` for duplicates, `Conflict`).
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&IdempotencyEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }
}

impl<S, St: Clone, F> Layer<S> for InboxLayer<St, F> {
    type Service = Inbox<S, St, F>;
    fn layer(&self, inner: S) -> Self::Service {
        Inbox {
            inner,
            config: Arc::new(Config {
                store: self.store.clone(),
                id: self.id.clone(),
                prefix: self.prefix.clone(),
                ttl: self.ttl,
                lease: self.lease.min(self.ttl),
                listeners: self.listeners.clone(),
            }),
        }
    }
}

/// A message consumer that processes each message id once; see [`InboxLayer`].
pub struct Inbox<S, St, F> {
    inner: S,
    config: Arc<Config<St, F>>,
}

impl<S: Clone, St, F> Clone for Inbox<S, St, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, St: fmt::Debug, F> fmt::Debug for Inbox<S, St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("inner", &self.inner)
            .field("store", &self.config.store)
            .finish_non_exhaustive()
    }
}

impl<S, St, F> Inbox<S, St, F> {
    palisade_core::define_inner_service_accessors!();
}

struct Release<St: Store> {
    store: St,
    key: String,
    token: u64,
    armed: bool,
}

impl<St: Store> Drop for Release<St> {
    fn drop(&mut self) {
        if !self.armed || self.store.release_now(&self.key, self.token) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = std::mem::take(&mut self.key);
            let token = self.token;
            handle.spawn(async move {
                let _ = store.release(&key, token).await;
            });
        }
    }
}

const NO_FINGERPRINT: [u8; 32] = [0; 32];

/// The store key of a message id: `in1/` escape(prefix) `/` escape(id) (see
/// [`scope`](crate::scope) for the escaping), so no prefix and id pair collides with another.
pub(crate) fn inbox_key(prefix: &str, id: &str) -> String {
    let mut out = String::with_capacity(8 + prefix.len() + id.len());
    out.push_str("in1/");
    crate::scope::escape_into(&mut out, prefix.as_bytes());
    out.push('/');
    crate::scope::escape_into(&mut out, id.as_bytes());
    out
}

impl<S, St, F, M> Service<M> for Inbox<S, St, F>
where
    S: Service<M> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    St: Store,
    F: Fn(&M) -> String + Send + Sync + 'static,
    M: Send + 'static,
{
    type Response = InboxOutcome<S::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, msg: M) -> Self::Future {
        let config = self.config.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let key = inbox_key(&config.prefix, &(config.id)(&msg));
        Box::pin(async move {
            let begin = config
                .store
                .begin(&key, &NO_FINGERPRINT, config.lease, config.ttl)
                .await
                .map_err(|_| StoreUnavailable::new(Some(DEFAULT_STORE_RETRY_AFTER)))?;
            let token = match begin {
                Begin::Started { fencing_token, .. } => fencing_token,
                Begin::Completed(_) | Begin::Mismatch => {
                    config
                        .listeners
                        .emit_named(|instance| IdempotencyEvent::Replayed {
                            instance,
                            status: StatusCode::OK,
                        });
                    return Ok(InboxOutcome::Duplicate);
                }
                Begin::InFlight => {
                    config
                        .listeners
                        .emit_named(|instance| IdempotencyEvent::Conflict { instance });
                    return Err(IdempotencyConflict::new().into());
                }
            };
            let mut guard = Release {
                store: config.store.clone(),
                key,
                token,
                armed: true,
            };
            // The lease is renewed while the consumer runs, so a consumer slower than the
            // lease does not let a redelivery process the message a second time.
            let res = crate::lease::with_renewal(
                inner.call(msg),
                &config.store,
                &guard.key,
                token,
                config.lease,
            )
            .await
            .map_err(Into::into)?;
            let done = StoredResponse {
                status: StatusCode::OK,
                headers: Vec::new(),
                body: Bytes::new(),
            };
            let stored = config
                .store
                .complete(&guard.key, token, &done, config.ttl)
                .await
                .unwrap_or(false);
            guard.armed = false;
            config
                .listeners
                .emit_named(|instance| IdempotencyEvent::Executed {
                    instance,
                    status: StatusCode::OK,
                    stored,
                });
            Ok(InboxOutcome::Processed(res))
        })
    }
}
