//! [`CollectBodies`]: reads every request body to the end and records it, in front of a
//! handler such as [`ScriptedService`](crate::ScriptedService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::Request;
use http_body::Body;
use http_body_util::{BodyExt, Full};
use palisade_core::BoxError;
use tower_service::Service;

/// A Tower service that reads each request's body to the end, records the bytes, and passes
/// the request on to `S` with the collected body (`Full<Bytes>`). Clones share the record.
///
/// A body that fails while being read fails the call with its error, and `S` is not called.
/// Use it to check what a retrying or replaying layer sent on each attempt.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use palisade_test::{CollectBodies, ScriptedService};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let upstream = CollectBodies::new(ScriptedService::new());
/// let req = http::Request::new(Full::new(Bytes::from_static(b"hello")));
/// upstream.clone().oneshot(req).await.unwrap();
/// assert_eq!(upstream.bodies(), ["hello"]);
/// assert_eq!(upstream.inner().calls(), 1);
/// # }
/// ```
#[derive(Clone)]
pub struct CollectBodies<S> {
    inner: S,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl<S: fmt::Debug> fmt::Debug for CollectBodies<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectBodies")
            .field("inner", &self.inner)
            .field("bodies", &self.bodies().len())
            .finish()
    }
}

impl<S> CollectBodies<S> {
    /// Reads the bodies of the requests going to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            bodies: Arc::default(),
        }
    }

    /// Every body read to the end, in the order the reads finished.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The wrapped service (for a [`ScriptedService`](crate::ScriptedService): its calls and
    /// requests).
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for CollectBodies<S>
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The service that was polled ready makes the call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let bodies = self.bodies.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let mut collected = body.collect().await.map_err(Into::into)?.aggregate();
            let bytes = collected.copy_to_bytes(collected.remaining());
            bodies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(bytes.clone());
            inner
                .call(Request::from_parts(parts, Full::new(bytes)))
                .await
                .map_err(Into::into)
        })
    }
}
