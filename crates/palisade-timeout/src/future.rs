//! Response future of [`Timeout`](crate::Timeout).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_core::{BoxError, Elapsed, Listeners};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::events::{DeadlineSource, TimeoutEvent};

pin_project! {
    /// Response future of [`Timeout`](crate::Timeout): the inner future raced against a
    /// timer, both inline (no allocation).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    /// The timer, armed only once the inner future first returns `Pending`: a call that
    /// completes on its first poll never touches the timer wheel.
    #[project = TimerProj]
    enum Timer {
        Unarmed { deadline: Instant },
        Armed { #[pin] sleep: Sleep },
    }
}

impl Timer {
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.as_mut().project() {
                TimerProj::Armed { sleep } => return sleep.poll(cx),
                TimerProj::Unarmed { deadline } => {
                    let sleep = tokio::time::sleep_until(*deadline);
                    self.set(Self::Armed { sleep });
                }
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Running {
            #[pin]
            inner: F,
            #[pin]
            timer: Timer,
            timeout: Duration,
            source: DeadlineSource,
            listeners: Listeners<TimeoutEvent>,
        },
        Expired { timeout: Duration },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        deadline: Instant,
        timeout: Duration,
        source: DeadlineSource,
        listeners: Listeners<TimeoutEvent>,
    ) -> Self {
        Self {
            kind: Kind::Running {
                inner,
                timer: Timer::Unarmed { deadline },
                timeout,
                source,
                listeners,
            },
        }
    }

    pub(crate) fn expired(elapsed: Elapsed) -> Self {
        Self {
            kind: Kind::Expired {
                timeout: elapsed.timeout,
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Running {
                inner,
                timer,
                timeout,
                source,
                listeners,
            } => {
                if let Poll::Ready(out) = inner.poll(cx) {
                    return Poll::Ready(out.map_err(Into::into));
                }
                match timer.poll(cx) {
                    Poll::Ready(()) => {
                        let (timeout, source) = (*timeout, *source);
                        listeners.emit_named(|instance| TimeoutEvent::Elapsed {
                            instance,
                            timeout,
                            source,
                        });
                        Poll::Ready(Err(Elapsed::new(timeout).into()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            KindProj::Expired { timeout } => Poll::Ready(Err(Elapsed::new(*timeout).into())),
        }
    }
}
