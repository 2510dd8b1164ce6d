//! [`Record`]: the recording service.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::time::Instant;
use tower_service::Service;

use crate::record::body::{RecordBody, Side, Tap};
use crate::record::draft::{Captured, Draft, Shared};
use crate::record::future::ResponseFuture;
use crate::record::layer::{Settings, State};

/// Middleware recording request/response pairs (see [`RecordLayer`](crate::record::RecordLayer)).
///
/// The inner service receives the request with its body wrapped in a [`RecordBody`] (which
/// copies the first bytes of a recorded request as the service reads them); the response
/// body is wrapped likewise. `Clone`: clones share the recorder.
#[derive(Debug)]
pub struct Record<S> {
    inner: S,
    settings: Arc<Settings>,
    state: Arc<State>,
}

impl<S: Clone> Clone for Record<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S> Record<S> {
    pub(crate) fn from_parts(inner: S, settings: Arc<Settings>, state: Arc<State>) -> Self {
        Self {
            inner,
            settings,
            state,
        }
    }
    palisade_core::define_inner_service_accessors!();

    #[cold]
    fn start<B>(&self, req: &Request<B>) -> Arc<Shared> {
        let st = &*self.state;
        st.sink.counters.sampled.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        Shared::new(
            Draft {
                seq: st.seq.fetch_add(1, Ordering::Relaxed),
                at: started.saturating_duration_since(st.start),
                started,
                method: req.method().clone(),
                uri: req.uri().clone(),
                request_headers: self.settings.rules.capture(req.headers()),
                request_body: Captured::default(),
                status: None,
                response_headers: Vec::new(),
                response_body: Captured::default(),
                ended: None,
                error: None,
            },
            st.sink.clone(),
        )
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Record<S>
where
    S: Service<Request<RecordBody<ReqB>>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ReqB: Body<Data = Bytes>,
    ResB: Body<Data = Bytes>,
{
    type Response = Response<RecordBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let sampled = self.settings.chance.fires(&mut self.state.rng.draws());
        if !sampled {
            self.state
                .sink
                .counters
                .unsampled
                .fetch_add(1, Ordering::Relaxed);
            let req = req.map(|b| RecordBody::new(b, None));
            return ResponseFuture::new(self.inner.call(req), None);
        }
        let shared = self.start(&req);
        let limit = self.settings.limit;
        let tap = Tap::new(shared.clone(), Side::Request, limit);
        let req = req.map(|b| RecordBody::new(b, Some(tap)));
        ResponseFuture::new(self.inner.call(req), Some((shared, self.settings.clone())))
    }
}
