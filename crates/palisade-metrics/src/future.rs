//! The response future of [`Metrics`](crate::Metrics).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use palisade_core::header::IDEMPOTENT_REPLAYED;
use palisade_core::rejection::find_rejection;
use palisade_core::{BoxError, Classifier, Outcome, ResponseParts};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::names::{CANCELLED, FAILURE, IDEMPOTENT_REPLAY, IGNORED, SUCCESS};
use crate::route::RouteMetrics;

/// Decrements the in-flight gauge when the request ends, however it ends.
#[derive(Debug)]
pub(crate) struct Guard {
    route: Arc<RouteMetrics>,
    start: Instant,
    done: bool,
}

impl Guard {
    pub(crate) fn new(route: Arc<RouteMetrics>, start: Instant) -> Self {
        Self {
            route,
            start,
            done: false,
        }
    }

    fn finish(&mut self, outcome: &'static str) {
        self.done = true;
        self.route
            .duration
            .record(self.start.elapsed().as_secs_f64());
        self.route.count(outcome);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.route.count(CANCELLED);
        }
        self.route.in_flight.decrement(1.0);
    }
}

pin_project! {
    /// Response future of [`Metrics`](crate::Metrics): records the outcome and duration
    /// when the inner future completes, `cancelled` when dropped before.
    #[derive(Debug)]
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: F,
        guard: Guard,
        classifier: C,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(inner: F, guard: Guard, classifier: C) -> Self {
        Self {
            inner,
            guard,
            classifier,
        }
    }
}

fn label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => SUCCESS,
        Outcome::Failure => FAILURE,
        Outcome::Ignored => IGNORED,
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    T: ResponseParts,
    E: Into<BoxError>,
    C: Classifier<T, BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        let outcome = match &result {
            // No allocation: an empty header map answers at once, others hash one name.
            Ok(res) if res.headers().contains_key(&IDEMPOTENT_REPLAYED) => IDEMPOTENT_REPLAY,
            Ok(res) => label(this.classifier.classify(Ok(res))),
            Err(err) => match find_rejection(&**err) {
                Some(rejection) => rejection.kind(),
                None => label(this.classifier.classify(Err(err))),
            },
        };
        if !this.guard.done {
            this.guard.finish(outcome);
        }
        Poll::Ready(result)
    }
}
