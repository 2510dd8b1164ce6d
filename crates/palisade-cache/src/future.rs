//! [`ResponseFuture`]: the future of [`Cache`](crate::Cache).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use crate::body::CacheBody;

type Output<B, E> = Result<Response<CacheBody<B>>, E>;

/// Response future of [`Cache`](crate::Cache): ready at once for an answer from memory (no
/// allocation), a boxed future when the request goes upstream or to a remote store.
pub struct ResponseFuture<B, E> {
    kind: Kind<B, E>,
}

enum Kind<B, E> {
    Ready(Option<Output<B, E>>),
    Boxed(Pin<Box<dyn Future<Output = Output<B, E>> + Send>>),
}

impl<B, E> ResponseFuture<B, E> {
    pub(crate) fn ready(out: Output<B, E>) -> Self {
        Self {
            kind: Kind::Ready(Some(out)),
        }
    }

    pub(crate) fn boxed(fut: Pin<Box<dyn Future<Output = Output<B, E>> + Send>>) -> Self {
        Self {
            kind: Kind::Boxed(fut),
        }
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Ready(_) => "ready",
            Kind::Boxed(_) => "boxed",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

// Neither variant is structurally pinned: the ready value is moved out, the boxed future
// is pinned on the heap.
impl<B, E> Unpin for ResponseFuture<B, E> {}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Output<B, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready(out) => {
                Poll::Ready(out.take().expect("ResponseFuture polled after completion"))
            }
            Kind::Boxed(fut) => fut.as_mut().poll(cx),
        }
    }
}
