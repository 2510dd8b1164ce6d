//! The response future of [`AdaptiveThrottle`](super::AdaptiveThrottle).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use palisade_core::classify::Classifier;
use palisade_core::{BoxError, Throttled};
use pin_project_lite::pin_project;

use super::layer::Shared;

pin_project! {
    /// Response future of [`AdaptiveThrottle`](super::AdaptiveThrottle): the inner call,
    /// whose answer is counted as an accept or not, or a local [`Throttled`] rejection.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        // Present until the answer is counted.
        shared: Option<Arc<Shared<C>>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] fut: F },
        Rejected { error: Option<Throttled> },
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, shared: Arc<Shared<C>>) -> Self {
        Self {
            kind: Kind::Called { fut },
            shared: Some(shared),
        }
    }

    pub(crate) fn rejected(error: Throttled) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
            shared: None,
        }
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classifier<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { fut } => {
                let result = ready!(fut.poll(cx));
                // Dropped before answering (cancelled): never counted as an accept.
                if let Some(shared) = this.shared.take()
                    && !shared.classifier.classify(result.as_ref()).is_failure()
                {
                    shared.state.window.accept();
                }
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("throttle future polled after completion")
                .into())),
        }
    }
}
