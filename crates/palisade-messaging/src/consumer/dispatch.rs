//! Routing deliveries to a handler per message type.

use super::delivery::{Delivery, Permanent};
use futures_util::future::BoxFuture;
use palisade_core::BoxError;
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

type Handler = Arc<dyn Fn(Delivery) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

fn boxed<S>(svc: S) -> Handler
where
    S: Service<Delivery> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    Arc::new(move |d| {
        let mut svc = svc.clone();
        Box::pin(async move {
            poll_fn(|cx| svc.poll_ready(cx)).await.map_err(Into::into)?;
            svc.call(d).await.map(drop).map_err(Into::into)
        })
    })
}

/// A `Service<Delivery>` that hands each delivery to the handler registered for its
/// [`message_type`](Delivery::message_type). A type without a handler (and no fallback)
/// fails with [`Permanent`], so the processor dead-letters it at once.
#[derive(Clone, Default)]
pub struct Dispatch {
    routes: Arc<HashMap<String, Handler>>,
    fallback: Option<Handler>,
}

impl fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("types", &self.routes.keys().collect::<Vec<_>>())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Dispatch {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends messages of `message_type` to `handler` (replacing an earlier route).
    #[must_use]
    pub fn route<S>(mut self, message_type: impl Into<String>, handler: S) -> Self
    where
        S: Service<Delivery> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        Arc::make_mut(&mut self.routes).insert(message_type.into(), boxed(handler));
        self
    }

    /// Sends messages of every other type to `handler`.
    #[must_use]
    pub fn fallback<S>(mut self, handler: S) -> Self
    where
        S: Service<Delivery> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        self.fallback = Some(boxed(handler));
        self
    }
}

impl Service<Delivery> for Dispatch {
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, d: Delivery) -> Self::Future {
        if let Some(h) = self.routes.get(d.message_type()).or(self.fallback.as_ref()) {
            return h(d);
        }
        let e = Permanent(format!(
            "no handler for message type `{}`",
            d.message_type()
        ));
        Box::pin(async move { Err(e.into()) })
    }
}
