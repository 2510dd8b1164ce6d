//! Response future of [`Split`](crate::Split).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use palisade_core::Classifier;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::handle::Control;

pin_project! {
    /// Response future for [`Split`](crate::Split): records the outcome and latency of the
    /// arm that served and optionally names it in a response header.
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: F,
        arm: usize,
        // Whether the outcome counts in the arm statistics (not for overrides).
        record: bool,
        start: Instant,
        control: Arc<Control>,
        classifier: C,
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("arm", &self.arm)
            .finish_non_exhaustive()
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(
        inner: F,
        arm: usize,
        record: bool,
        control: Arc<Control>,
        classifier: C,
    ) -> Self {
        Self {
            inner,
            arm,
            record,
            start: Instant::now(),
            control,
            classifier,
        }
    }
}

impl<F, C, B, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    C: Classifier<Response<B>, E>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if *this.record {
            let outcome = this.classifier.classify(result.as_ref());
            if !matches!(outcome, palisade_core::Outcome::Ignored) {
                this.control.stats[*this.arm].record(outcome.is_failure(), this.start.elapsed());
            }
        }
        if let (Ok(res), Some(name)) = (&mut result, &this.control.response_header) {
            res.headers_mut()
                .insert(name.clone(), this.control.header_values[*this.arm].clone());
        }
        Poll::Ready(result)
    }
}
