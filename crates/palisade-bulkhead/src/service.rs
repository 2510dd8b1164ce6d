use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_core::{BoxError, BulkheadFull};
use tower_service::Service;

use crate::admission::{Acquire, Admission, Permit};
use crate::config::BulkheadMode;
use crate::events::{BulkheadEvent, RejectReason};
use crate::future::{ResponseFuture, WaitGuard};
use crate::handle::BulkheadHandle;
use crate::layer::BulkheadLayer;
use crate::priority::Priority;
use crate::release::Release;

/// Middleware that lets at most N calls in at once, queues a bounded number by priority,
/// and refuses the rest with [`BulkheadFull`] (503 / RESOURCE_EXHAUSTED through
/// `HandleRejections`).
///
/// Clones share one bulkhead. A slot is held until the response future completes or is
/// dropped, and by default ([`OnBodyEnd`](crate::OnBodyEnd)) until the response body has
/// been streamed, so a streaming response keeps its slot. A panicking handler releases its
/// slot as the future unwinds.
#[derive(Debug)]
pub struct Bulkhead<S, P, Rel> {
    inner: S,
    admission: Arc<Admission>,
    priority: P,
    mode: BulkheadMode,
    max_queue_wait: Duration,
    /// Backpressure mode: the slot reserved by `poll_ready` for the next `call`.
    reserved: Option<Permit>,
    waiting: Option<WaitGuard>,
    _release: PhantomData<fn() -> Rel>,
}

impl<S: Clone, P: Clone, Rel> Clone for Bulkhead<S, P, Rel> {
    fn clone(&self) -> Self {
        // A reserved slot or a queue place belongs to this handle, never to its clones.
        Self {
            inner: self.inner.clone(),
            admission: self.admission.clone(),
            priority: self.priority.clone(),
            mode: self.mode,
            max_queue_wait: self.max_queue_wait,
            reserved: None,
            waiting: None,
            _release: PhantomData,
        }
    }
}

impl<S, P: Clone, Rel> Bulkhead<S, P, Rel> {
    pub(crate) fn new(inner: S, layer: &BulkheadLayer<P, Rel>) -> Self {
        Self {
            inner,
            admission: layer.admission.clone(),
            priority: layer.priority.clone(),
            mode: layer.mode,
            max_queue_wait: layer.max_queue_wait,
            reserved: None,
            waiting: None,
            _release: PhantomData,
        }
    }
}

impl<S, P, Rel> Bulkhead<S, P, Rel> {
    /// A handle on the shared bulkhead.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle {
            admission: self.admission.clone(),
        }
    }
    palisade_core::define_inner_service_accessors!();

    fn rejected(&self, lane: usize, reason: RejectReason) -> BulkheadFull {
        reject(&self.admission, lane, reason, self.max_queue_wait)
    }

    /// Backpressure: get a slot for the next call, waiting in lane 0.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BulkheadFull>> {
        loop {
            if self.reserved.is_some() {
                return Poll::Ready(Ok(()));
            }
            if let Some(w) = &mut self.waiting {
                if let Some(permit) = w.try_take() {
                    self.reserved = Some(permit);
                    self.waiting = None;
                    continue;
                }
                w.register(cx.waker());
                if w.is_granted() {
                    continue;
                }
                return Poll::Pending;
            }
            match self.admission.acquire(0) {
                Acquire::Granted(p) => self.reserved = Some(p),
                Acquire::Queued(w) => {
                    self.waiting = Some(WaitGuard::new(self.admission.clone(), w));
                }
                Acquire::Full => return Poll::Ready(Err(self.rejected(0, RejectReason::Full))),
            }
        }
    }
}

impl<S, P, Rel, R> Service<R> for Bulkhead<S, P, Rel>
where
    S: Service<R> + Clone,
    S::Error: Into<BoxError>,
    P: Priority<R>,
    Rel: Release<S::Response>,
{
    type Response = Rel::Output;
    type Error = BoxError;
    type Future = ResponseFuture<S, R, Rel>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.mode == BulkheadMode::Backpressure {
            std::task::ready!(self.poll_slot(cx))?;
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        if let Some(permit) = self.reserved.take() {
            return ResponseFuture::running(self.inner.call(req), permit);
        }
        let lane = self.priority.lane(&req);
        admit(
            &self.admission,
            &mut self.inner,
            req,
            lane,
            self.max_queue_wait,
        )
    }
}

/// Takes a slot in `lane` for `req`, queues it, or rejects it (shed path).
pub(crate) fn admit<S, R, Rel>(
    admission: &Arc<Admission>,
    inner: &mut S,
    req: R,
    lane: usize,
    max_queue_wait: Duration,
) -> ResponseFuture<S, R, Rel>
where
    S: Service<R> + Clone,
{
    let lane = lane.min(admission.lanes() - 1);
    match admission.acquire(lane) {
        Acquire::Granted(permit) => ResponseFuture::running(inner.call(req), permit),
        Acquire::Queued(w) => {
            // Call the readied service later: move it out, leave a fresh clone behind.
            let clone = inner.clone();
            let inner = std::mem::replace(inner, clone);
            ResponseFuture::waiting(
                WaitGuard::new(admission.clone(), w),
                tokio::time::sleep(max_queue_wait),
                inner,
                req,
                lane,
                max_queue_wait,
            )
        }
        Acquire::Full => ResponseFuture::rejected(Box::new(reject(
            admission,
            lane,
            RejectReason::Full,
            max_queue_wait,
        ))),
    }
}

/// Emits the rejection event and builds the error.
pub(crate) fn reject(
    admission: &Admission,
    lane: usize,
    reason: RejectReason,
    max_queue_wait: Duration,
) -> BulkheadFull {
    admission
        .listeners
        .emit_named(|instance| BulkheadEvent::Rejected {
            instance,
            lane,
            reason,
        });
    BulkheadFull::new(Some(max_queue_wait))
}
