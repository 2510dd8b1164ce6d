//! The timers of the retry and hedge futures: an inline one-shot [`Timer`] and a lazily
//! boxed, reusable [`BoxTimer`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pin_project! {
    /// An optional inline `Sleep` (the hedge's next-copy timer).
    #[project = TimerProj]
    pub(crate) enum Timer {
        Off,
        On { #[pin] sleep: Sleep },
    }
}

impl Timer {
    pub(crate) fn after(d: Option<Duration>) -> Self {
        match d {
            Some(d) => Self::On {
                sleep: tokio::time::sleep(d),
            },
            None => Self::Off,
        }
    }
}

/// A lazily boxed timer for backoff and per-attempt timeouts: nothing is allocated (and
/// the future stays small) unless a retry or a per-attempt timeout needs it; the box is
/// reused across attempts.
#[derive(Debug, Default)]
pub(crate) struct BoxTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl BoxTimer {
    #[inline]
    pub(crate) fn new(d: Option<Duration>) -> Self {
        let mut t = Self::default();
        t.arm(d);
        t
    }

    /// Arms the timer `d` from now (`None` disarms it).
    #[inline]
    pub(crate) fn arm(&mut self, d: Option<Duration>) {
        let Some(d) = d else {
            self.armed = false;
            return;
        };
        match &mut self.sleep {
            Some(s) => s.as_mut().reset(Instant::now() + d),
            None => self.sleep = Some(Box::pin(tokio::time::sleep(d))),
        }
        self.armed = true;
    }

    /// Ready once an armed timer fires (immediately if disarmed).
    #[inline]
    pub(crate) fn poll_sleep(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&mut self.sleep, self.armed) {
            (Some(s), true) => s.as_mut().poll(cx),
            _ => Poll::Ready(()),
        }
    }

    /// Whether an armed timer has fired.
    #[inline]
    pub(crate) fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.armed && self.poll_sleep(cx).is_ready()
    }
}
