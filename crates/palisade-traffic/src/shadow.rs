//! Shadow traffic (mirroring): copy requests to a candidate service in the background.
//!
//! The candidate's response is only compared with the primary's status and reported as a
//! [`TrafficEvent::ShadowCompared`]; it is never returned, and the primary path never waits
//! for it. Mirroring is skipped (and the request goes to the primary untouched) when the
//! concurrency limit is reached or the body's size hint exceeds the buffer limit. A mirrored
//! request's body is buffered once (up to the limit) and replayed to both services, so the
//! primary receives a [`ReplayBody`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use palisade_core::body::{Read, ReadBody};
use palisade_core::{BoxError, Listeners};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tower_layer::Layer;
use tower_service::Service;

use crate::events::TrafficEvent;

/// The request body the primary service sees: the original body when the request is not
/// mirrored, or the body buffered (and shared with the mirror) when it is. It is
/// palisade-core's `ReplayBody`, the one body type of every layer that reads bodies
/// (retry, idempotency).
pub use palisade_core::body::ReplayBody;

/// The former name of [`ReplayBody`], kept so that existing code compiles.
#[doc(hidden)]
pub type ShadowBody<B> = ReplayBody<B>;

#[derive(Debug)]
struct ShadowShared {
    semaphore: Arc<Semaphore>,
    max_body: usize,
    timeout: Duration,
    listeners: Listeners<TrafficEvent>,
}

/// Layer mirroring requests to `mirror`; see [`Shadow`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ShadowLayer<M> {
    mirror: M,
    max_concurrency: usize,
    max_body: usize,
    timeout: Duration,
    listeners: Listeners<TrafficEvent>,
}

/// Largest [`ShadowLayer::max_concurrency`].
pub const MAX_SHADOW_CONCURRENCY: usize = 100_000;
/// Largest [`ShadowLayer::max_body`]: 64 MiB.
pub const MAX_SHADOW_BODY: usize = 64 * 1024 * 1024;
/// Longest [`ShadowLayer::timeout`]: 1 h.
pub const MAX_SHADOW_TIMEOUT: Duration = Duration::from_secs(3600);

impl<M> ShadowLayer<M> {
    /// Mirrors to `mirror` with at most 16 mirrored requests in flight, bodies up to 64 KiB,
    /// and a 10 s mirror timeout.
    pub fn new(mirror: M) -> Self {
        Self {
            mirror,
            max_concurrency: 16,
            max_body: 64 * 1024,
            timeout: Duration::from_secs(10),
            listeners: Listeners::new().named("shadow"),
        }
    }

    /// Most mirrored requests in flight (further requests are not mirrored), at most
    /// [`MAX_SHADOW_CONCURRENCY`] (larger values are lowered to it). `0` disables mirroring.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.min(MAX_SHADOW_CONCURRENCY);
        self
    }

    /// Largest request body (by its size hint's upper bound) that is buffered and mirrored,
    /// at most [`MAX_SHADOW_BODY`] (64 MiB; larger values are lowered to it).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes.min(MAX_SHADOW_BODY);
        self
    }

    /// Mirror calls taking longer are abandoned (reported with `shadow: None`); at most
    /// [`MAX_SHADOW_TIMEOUT`] (1 h; longer values are lowered to it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(MAX_SHADOW_TIMEOUT);
        self
    }

    /// The layer's instance name, carried by its events. Default `"shadow"`.
    pub fn name(mut self, name: impl Into<palisade_core::InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }

    /// Calls `f` for every shadow event.
    pub fn on_event(mut self, f: impl Fn(&TrafficEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }
}

impl<S, M: Clone> Layer<S> for ShadowLayer<M> {
    type Service = Shadow<S, M>;

    fn layer(&self, primary: S) -> Shadow<S, M> {
        Shadow {
            primary,
            mirror: self.mirror.clone(),
            shared: Arc::new(ShadowShared {
                semaphore: Arc::new(Semaphore::new(self.max_concurrency)),
                max_body: self.max_body,
                timeout: self.timeout,
                listeners: self.listeners.clone(),
            }),
        }
    }
}

/// Sends each request to the primary and, in the background, a copy to the mirror.
///
/// Needs a tokio runtime (the mirror call is spawned). Clones share the concurrency limit.
#[derive(Debug, Clone)]
pub struct Shadow<S, M> {
    primary: S,
    mirror: M,
    shared: Arc<ShadowShared>,
}

impl<S, M> Shadow<S, M> {
    // The inner service is the primary; the mirror is not reachable through these.
    palisade_core::define_inner_service_accessors!(primary: S);
}

pin_project! {
    /// Response future of [`Shadow`].
    pub struct ShadowFuture<S, B, F> {
        #[pin]
        state: State<S, B, F>,
        status_tx: Option<oneshot::Sender<StatusCode>>,
    }
}

impl<S, B, F> std::fmt::Debug for ShadowFuture<S, B, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowFuture").finish_non_exhaustive()
    }
}

type Mirror = Box<dyn FnOnce(Bytes) -> oneshot::Sender<StatusCode> + Send>;

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        Collecting {
            #[pin]
            read: ReadBody<B>,
            parts: Option<http::request::Parts>,
            primary: Option<S>,
            spawn_mirror: Option<Mirror>,
        },
        Calling { #[pin] fut: F },
    }
}

impl<S, M, B, RB, MB> Service<Request<B>> for Shadow<S, M>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    M: Service<Request<Full<Bytes>>, Response = Response<MB>> + Clone + Send + 'static,
    M::Future: Send,
    M::Error: Into<BoxError>,
    MB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ShadowFuture<S, B, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.primary.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let fits = req
            .body()
            .size_hint()
            .upper()
            .is_some_and(|u| u <= self.shared.max_body as u64);
        let permit = if fits {
            Arc::clone(&self.shared.semaphore).try_acquire_owned().ok()
        } else {
            None
        };
        let Some(permit) = permit else {
            self.shared
                .listeners
                .emit_named(|instance| TrafficEvent::ShadowSkipped {
                    instance,
                    reason: if fits {
                        "concurrency limit"
                    } else {
                        "body too large or unbounded"
                    },
                });
            let fut = self.primary.call(req.map(ReplayBody::original));
            return ShadowFuture {
                state: State::Calling { fut },
                status_tx: None,
            };
        };
        // The readied primary moves into the future; a fresh clone stays here.
        let clone = self.primary.clone();
        let primary = std::mem::replace(&mut self.primary, clone);
        let (parts, body) = req.into_parts();
        let (mut mirror_head, ()) = Request::new(()).into_parts();
        mirror_head.method = parts.method.clone();
        mirror_head.uri = parts.uri.clone();
        mirror_head.version = parts.version;
        mirror_head.headers = parts.headers.clone();
        let mirror = self.mirror.clone();
        let shared = Arc::clone(&self.shared);
        let spawn_mirror: Mirror = Box::new(move |bytes: Bytes| {
            let (tx, rx) = oneshot::channel();
            let req = Request::from_parts(mirror_head, Full::new(bytes));
            tokio::spawn(run_mirror(mirror, req, rx, permit, shared));
            tx
        });
        ShadowFuture {
            state: State::Collecting {
                read: ReadBody::new(body, self.shared.max_body),
                parts: Some(parts),
                primary: Some(primary),
                spawn_mirror: Some(spawn_mirror),
            },
            status_tx: None,
        }
    }
}

async fn run_mirror<M, MB>(
    mut mirror: M,
    req: Request<Full<Bytes>>,
    primary_status: oneshot::Receiver<StatusCode>,
    _permit: OwnedSemaphorePermit,
    shared: Arc<ShadowShared>,
) where
    M: Service<Request<Full<Bytes>>, Response = Response<MB>>,
    M::Error: Into<BoxError>,
{
    let call = async {
        std::future::poll_fn(|cx| mirror.poll_ready(cx))
            .await
            .ok()?;
        mirror.call(req).await.ok().map(|r| r.status())
    };
    let shadow = tokio::time::timeout(shared.timeout, call)
        .await
        .ok()
        .flatten();
    let primary = primary_status.await.ok();
    shared
        .listeners
        .emit_named(|instance| TrafficEvent::ShadowCompared {
            instance,
            primary,
            shadow,
            matched: primary.is_some() && primary == shadow,
        });
}

impl<S, B, F, RB, E> Future for ShadowFuture<S, B, F>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>, Future = F, Error = E>,
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting {
                    read,
                    parts,
                    primary,
                    spawn_mirror,
                } => {
                    let bytes = match ready!(read.poll(cx)) {
                        // Trailers are not mirrored (nor sent to the primary, as before).
                        Ok(Read::Complete { data, .. }) => data,
                        // The body is larger than its size hint said: the rest cannot be
                        // sent on (it is pinned in this future), so the request fails.
                        Ok(Read::Over { .. }) => {
                            return Poll::Ready(Err(
                                "shadow: the request body is longer than its size hint".into(),
                            ));
                        }
                        Err(e) => return Poll::Ready(Err(e.into())),
                    };
                    if let Some(spawn) = spawn_mirror.take() {
                        *this.status_tx = Some(spawn(bytes.clone()));
                    }
                    let parts = parts.take().expect("polled after completion");
                    let mut primary = primary.take().expect("polled after completion");
                    let req = Request::from_parts(parts, ReplayBody::buffered(bytes));
                    let fut = primary.call(req);
                    this.state.set(State::Calling { fut });
                }
                StateProj::Calling { fut } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into);
                    if let (Some(tx), Ok(r)) = (this.status_tx.take(), &res) {
                        let _ = tx.send(r.status());
                    }
                    return Poll::Ready(res);
                }
            }
        }
    }
}
