//! [`Fault`]: the service.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use palisade_core::BoxError;
use palisade_core::response::{Protocol, grpc_status_response, rejection_response};
use tokio::time::Instant;
use tower_service::Service;

use crate::body::FaultBody;
use crate::error::FaultAborted;
use crate::events::{FaultEvent, FaultSource, SkipReason};
use crate::fault::{AbortWith, Plan, grpc_code_for};
use crate::future::ResponseFuture;
use crate::headers::FromHeaders;
use crate::layer::{ActiveGuard, Settings, State};

/// Middleware that injects faults into an HTTP service (see [`FaultLayer`](crate::FaultLayer)).
///
/// Per request, in this order: the gates (kill switch, time window, request budget,
/// predicate), then each fault with its own probability — delay, then abort or error, then a
/// response bandwidth limit. A request for which nothing fires goes straight to the inner
/// service, allocating nothing. `Clone`: clones share the layer's state.
#[derive(Debug)]
pub struct Fault<S> {
    inner: S,
    settings: Arc<Settings>,
    state: Arc<State>,
}

impl<S: Clone> Clone for Fault<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S> Fault<S> {
    pub(crate) fn from_parts(inner: S, settings: Arc<Settings>, state: Arc<State>) -> Self {
        Self {
            inner,
            settings,
            state,
        }
    }
    palisade_core::define_inner_service_accessors!();

    /// Chooses the faults for one request; an empty plan means pass through.
    #[inline]
    fn plan<B>(&self, req: &Request<B>) -> (Plan, FromHeaders) {
        let st = &*self.state;
        let s = &*self.settings;
        let mut plan = Plan::default();
        let mut from = FromHeaders::default();
        if s.gated() && !self.gates_open(req) {
            return (plan, from);
        }
        let mut rng = st.rng.draws();
        if let Some(h) = &s.headers {
            from = h.apply(req, &mut rng, &mut plan, &s.listeners);
        }
        if plan.delay.is_none()
            && let Some(d) = &s.delay
            && d.chance.fires(&mut rng)
        {
            plan.delay = Some(d.latency.sample(&mut rng));
        }
        if plan.abort.is_none()
            && let Some(a) = &s.abort
            && a.chance.fires(&mut rng)
        {
            plan.abort = Some(a.with);
        }
        if plan.abort.is_none() && s.error.fires(&mut rng) {
            plan.error = true;
        }
        if plan.throttle.is_none()
            && let Some(t) = &s.throttle
            && t.chance.fires(&mut rng)
        {
            plan.throttle = Some(t.bytes_per_second);
        }
        (plan, from)
    }

    #[cold]
    fn gates_open<B>(&self, req: &Request<B>) -> bool {
        let s = &*self.settings;
        if let Some((start, end)) = s.window {
            let now = Instant::now();
            if now < start || now >= end {
                return false;
            }
        }
        if let Some(p) = &s.predicate
            && !p(req)
        {
            return false;
        }
        if s.limited {
            return self
                .state
                .remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
        }
        true
    }

    /// Admits a faulted request under `max_active`, counts and reports its faults.
    fn admit(&self, plan: &Plan, from: FromHeaders) -> Option<ActiveGuard> {
        let st = &*self.state;
        let s = &*self.settings;
        let before = st.active.fetch_add(1, Ordering::AcqRel);
        let guard = ActiveGuard(self.state.clone());
        if before >= s.max_active {
            drop(guard);
            st.skipped.fetch_add(1, Ordering::Relaxed);
            s.listeners.emit_named(|instance| FaultEvent::Skipped {
                instance,
                reason: SkipReason::MaxActive,
            });
            return None;
        }
        let source = |header: bool| {
            if header {
                FaultSource::Header
            } else {
                FaultSource::Configured
            }
        };
        if let Some(delay) = plan.delay {
            st.delayed.fetch_add(1, Ordering::Relaxed);
            s.listeners.emit_named(|instance| FaultEvent::Delayed {
                instance,
                delay,
                source: source(from.delay),
            });
        }
        if let Some(with) = plan.abort {
            st.aborted.fetch_add(1, Ordering::Relaxed);
            s.listeners.emit_named(|instance| FaultEvent::Aborted {
                instance,
                with,
                source: source(from.abort),
            });
        }
        if plan.error {
            st.failed.fetch_add(1, Ordering::Relaxed);
            s.listeners
                .emit_named(|instance| FaultEvent::Failed { instance });
        }
        if let Some(rate) = plan.throttle {
            st.throttled.fetch_add(1, Ordering::Relaxed);
            s.listeners.emit_named(|instance| FaultEvent::Throttled {
                instance,
                bytes_per_second: rate.get(),
                source: source(from.throttle),
            });
        }
        Some(guard)
    }
}

fn abort_response<B>(with: AbortWith, req: &Request<B>) -> Response<http_body_util::Full<Bytes>> {
    let grpc = Protocol::Auto.is_grpc(req.headers());
    match with {
        AbortWith::Grpc(code) => grpc_status_response(code, "fault injected"),
        AbortWith::Http(status) if grpc => {
            grpc_status_response(grpc_code_for(status), "fault injected")
        }
        AbortWith::Http(status) => {
            rejection_response(&FaultAborted::new(status, grpc_code_for(status)))
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Fault<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
{
    type Response = Response<FaultBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Request<ReqB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The no-fault path: a layer with nothing that can fire, or switched off, costs one
        // plain load and one relaxed atomic load before the inner call. The request is not
        // borrowed on this path, so it moves straight into the inner call without a copy.
        if self.settings.armed && self.state.enabled.load(Ordering::Relaxed) {
            let (plan, from) = self.plan_cold(&req);
            if !plan.is_empty() {
                return self.faulted(plan, from, req);
            }
        }
        ResponseFuture::passthrough(self.inner.call(req))
    }
}

impl<S> Fault<S> {
    /// An armed layer's plan, out of line: the request is only borrowed, so on the path
    /// where nothing fires it moves once, straight into the inner call.
    #[inline(never)]
    fn plan_cold<B>(&self, req: &Request<B>) -> (Plan, FromHeaders) {
        self.plan(req)
    }

    /// The faulted path, kept out of `call` so the no-fault path stays small.
    #[inline(never)]
    fn faulted<ReqB>(
        &mut self,
        plan: Plan,
        from: FromHeaders,
        req: Request<ReqB>,
    ) -> ResponseFuture<S::Future, S, Request<ReqB>>
    where
        S: Service<Request<ReqB>> + Clone,
    {
        let Some(guard) = self.admit(&plan, from) else {
            return ResponseFuture::passthrough(self.inner.call(req));
        };
        if plan.delay.is_none() && plan.abort.is_none() && !plan.error {
            // Throttle only: call now.
            return ResponseFuture::calling(self.inner.call(req), plan.throttle, guard);
        }
        let abort = plan.abort.map(|with| abort_response(with, &req));
        if abort.is_some() || plan.error {
            return ResponseFuture::answer(plan.delay, abort, guard);
        }
        // Delay, then call the service readied by `poll_ready` (a fresh clone stays here).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::delayed(plan.delay, inner, req, plan.throttle, guard)
    }
}
