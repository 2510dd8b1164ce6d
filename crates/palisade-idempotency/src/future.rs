//! Response future of [`Idempotency`](crate::Idempotency).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use palisade_core::BoxError;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

/// The boxed future of the keyed path (it buffers bodies and talks to the store, which
/// already allocates; see [`StoreFuture`](crate::StoreFuture)).
pub(crate) type KeyedFuture<B> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, BoxError>> + Send>>;

pin_project! {
    /// Response future of [`Idempotency`](crate::Idempotency): the inner future unboxed
    /// on pass-through (other methods, no key), a boxed future on the keyed path.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Pass { #[pin] future: F },
        Keyed { future: KeyedFuture<B> },
        Error { error: Option<BoxError> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn pass(future: F) -> Self {
        Self {
            kind: Kind::Pass { future },
        }
    }
    pub(crate) fn boxed(future: KeyedFuture<B>) -> Self {
        Self {
            kind: Kind::Keyed { future },
        }
    }
    pub(crate) fn error(error: BoxError) -> Self {
        Self {
            kind: Kind::Error { error: Some(error) },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Pass { .. } => "pass",
            Kind::Keyed { .. } => "keyed",
            Kind::Error { .. } => "error",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { future } => {
                let res = ready!(future.poll(cx)).map_err(Into::into)?;
                Poll::Ready(Ok(res.map(ResponseBody::inner)))
            }
            KindProj::Keyed { future } => future.as_mut().poll(cx),
            KindProj::Error { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}
