//! [`ResponseFuture`] of [`Translate`](super::Translate).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use palisade_core::BoxError;
use pin_project_lite::pin_project;

use super::error::TranslationError;
use super::translator::FromDomain;

pin_project! {
    /// Response future of [`Translate`](super::Translate).
    #[derive(Debug)]
    pub struct ResponseFuture<F, T> {
        #[pin]
        kind: Kind<F, T>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F, T> {
        Called { #[pin] future: F, translator: T },
        Refused { error: Option<TranslationError> },
    }
}

impl<F, T> ResponseFuture<F, T> {
    pub(crate) fn called(future: F, translator: T) -> Self {
        Self {
            kind: Kind::Called { future, translator },
        }
    }
    pub(crate) fn refused(error: TranslationError) -> Self {
        Self {
            kind: Kind::Refused { error: Some(error) },
        }
    }
}

impl<F, T, R, E> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    T: FromDomain<R>,
{
    type Output = Result<T::External, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { future, translator } => {
                let res = ready!(future.poll(cx)).map_err(Into::into)?;
                Poll::Ready(
                    translator
                        .from_domain(res)
                        .map_err(TranslationError::into_box_error),
                )
            }
            KindProj::Refused { error } => Poll::Ready(Err(error.take().map_or_else(
                || "response future polled after completion".into(),
                TranslationError::into_box_error,
            ))),
        }
    }
}
