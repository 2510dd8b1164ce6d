//! [`CoalesceLayer`]: concurrent identical requests share one upstream call.
//!
//! Requests are identical when method, host, path and query, the configured key headers
//! and the conditional/range headers (`If-None-Match`, `If-Modified-Since`, `If-Match`,
//! `If-Unmodified-Since`, `If-Range`, `Range`) are equal. Only `GET` and `HEAD` requests
//! without `Authorization` are coalesced. The first request (the *leader*) goes upstream;
//! the others (*followers*) wait and receive a copy of its response, whose body is buffered
//! once, up to [`max_body_bytes`](CoalesceLayer::max_body_bytes).
//!
//! Followers are sent upstream on their own instead when the leader's response is larger
//! than the bound, is `private` or `no-store`, or varies (`Vary`) on a header in which the
//! follower differs from the leader. When the leader fails, followers fail with
//! [`LeaderFailed`], which carries the leader's status (a rejection's, e.g. 503 for an open
//! circuit, else 502). A cancelled follower does not affect the leader; when the leader is
//! cancelled, a waiting follower takes over as the new leader — nobody hangs.
//!
//! Place it directly inside [`CacheLayer`](crate::CacheLayer), so that cache misses of one
//! key make one upstream call.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use palisade_core::rejection::find_rejection;
use palisade_core::{BoxError, GrpcCode};
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::CacheBody;
use crate::directives::ResponseDirectives;
use crate::future::ResponseFuture;
use crate::key;

/// The headers that make otherwise identical requests different for coalescing.
const CONDITIONAL: [HeaderName; 6] = [
    http::header::IF_NONE_MATCH,
    http::header::IF_MODIFIED_SINCE,
    http::header::IF_MATCH,
    http::header::IF_UNMODIFIED_SINCE,
    http::header::IF_RANGE,
    http::header::RANGE,
];

/// Followers' error when the leader's call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderFailed {
    /// The leader's error message.
    pub message: String,
    /// The status the leader's error would have been answered with (a Palisade
    /// rejection's status, else 502).
    pub status: StatusCode,
    /// The leader's gRPC code (a rejection's, else `UNAVAILABLE`).
    pub grpc_code: GrpcCode,
    /// The leader's rejection's `Retry-After`, if any.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for LeaderFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "coalesced request failed: {}", self.message)
    }
}

impl std::error::Error for LeaderFailed {}

impl palisade_core::Rejection for LeaderFailed {
    fn kind(&self) -> &'static str {
        "coalesced_leader_failed"
    }
    fn status(&self) -> StatusCode {
        self.status
    }
    fn grpc_code(&self) -> GrpcCode {
        self.grpc_code
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

#[derive(Debug, Clone)]
struct Shared {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
    leader_headers: HeaderMap,
}

#[derive(Debug, Clone)]
enum State {
    Pending,
    Done(Arc<Shared>),
    /// Followers go upstream themselves (too large, private, …).
    GoAlone,
    Failed(LeaderFailed),
    /// The leader was cancelled: a follower takes over.
    Abandoned,
}

struct Flight {
    key: Box<str>,
    tx: watch::Sender<State>,
}

#[derive(Default)]
struct Inflight {
    map: Mutex<HashMap<u64, Arc<Flight>>>,
}

/// Coalesces concurrent identical requests; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CoalesceLayer {
    max_body_bytes: usize,
    key_headers: Vec<HeaderName>,
}

impl Default for CoalesceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CoalesceLayer {
    /// Coalescing with bodies shared up to 1 MiB.
    pub fn new() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            key_headers: Vec::new(),
        }
    }

    /// Largest body copied to followers (clamped to at least 1); larger responses send the
    /// followers upstream on their own.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1);
        self
    }

    /// Adds a request header to the key (as [`CacheLayer::key_header`](crate::CacheLayer::key_header)).
    #[must_use]
    pub fn key_header(mut self, name: HeaderName) -> Self {
        if !self.key_headers.contains(&name) {
            self.key_headers.push(name);
        }
        self
    }
}

impl<S> Layer<S> for CoalesceLayer {
    type Service = Coalesce<S>;

    fn layer(&self, inner: S) -> Coalesce<S> {
        let mut key_headers = self.key_headers.clone();
        key_headers.extend(CONDITIONAL);
        Coalesce {
            inner,
            settings: Arc::new(Settings {
                max_body_bytes: self.max_body_bytes,
                key_headers,
                inflight: Inflight::default(),
            }),
        }
    }
}

struct Settings {
    max_body_bytes: usize,
    key_headers: Vec<HeaderName>,
    inflight: Inflight,
}

/// The coalescing service; built by [`CoalesceLayer`]. Clones share the in-flight table.
pub struct Coalesce<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: Clone> Clone for Coalesce<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Coalesce<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalesce")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Coalesce<S> {
    /// Requests in flight now (distinct keys with a leader).
    pub fn in_flight(&self) -> usize {
        self.settings
            .inflight
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    palisade_core::define_inner_service_accessors!();
}

/// Publishes `Abandoned` if the leader is dropped before it published a result, and
/// removes the flight from the table.
struct LeaderGuard {
    settings: Arc<Settings>,
    hash: u64,
    flight: Arc<Flight>,
    done: bool,
}

impl LeaderGuard {
    fn publish(&mut self, state: State) {
        self.done = true;
        self.remove();
        self.flight.tx.send_replace(state);
    }

    fn remove(&self) {
        let mut map = self
            .settings
            .inflight
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.hash)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.hash);
        }
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if !self.done {
            self.remove();
            self.flight.tx.send_replace(State::Abandoned);
        }
    }
}

enum Role {
    Leader(LeaderGuard),
    Follower(watch::Receiver<State>),
}

fn join(settings: &Arc<Settings>, hash: u64, key: &str) -> Option<Role> {
    let mut map = settings
        .inflight
        .map
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(f) = map.get(&hash) {
        // A colliding key is not coalesced.
        return (&*f.key == key).then(|| Role::Follower(f.tx.subscribe()));
    }
    let (tx, _) = watch::channel(State::Pending);
    let flight = Arc::new(Flight {
        key: key.into(),
        tx,
    });
    map.insert(hash, flight.clone());
    Some(Role::Leader(LeaderGuard {
        settings: settings.clone(),
        hash,
        flight,
        done: false,
    }))
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Coalesce<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<ResB, BoxError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let settings = self.settings.clone();
        ResponseFuture::boxed(Box::pin(coalesce(settings, inner, req)))
    }
}

async fn coalesce<S, ReqB, ResB>(
    settings: Arc<Settings>,
    inner: S,
    req: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, BoxError>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let eligible =
        crate::policy::is_get_or_head(req.method()) && !req.headers().contains_key(AUTHORIZATION);
    if !eligible {
        return pass(inner, req).await;
    }
    let mut key_text = String::from(req.method().as_str());
    key_text.push(' ');
    key_text.push_str(&key::text(req.uri(), req.headers(), &settings.key_headers));
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        key_text.hash(&mut h);
        h.finish()
    };
    loop {
        match join(&settings, hash, &key_text) {
            None => return pass(inner, req).await,
            Some(Role::Leader(guard)) => return lead(&settings, guard, inner, req).await,
            Some(Role::Follower(mut rx)) => {
                let state = match rx.wait_for(|s| !matches!(s, State::Pending)).await {
                    Ok(s) => s.clone(),
                    Err(_) => State::Abandoned,
                };
                match state {
                    State::Done(shared) => {
                        if varies(&shared, req.headers()) {
                            return pass(inner, req).await;
                        }
                        return Ok(copy(&shared, req.method() == http::Method::HEAD));
                    }
                    State::Failed(e) => return Err(e.into()),
                    State::GoAlone => return pass(inner, req).await,
                    // Take over: the first follower to get here becomes the leader.
                    State::Abandoned | State::Pending => {}
                }
            }
        }
    }
}

async fn pass<S, ReqB, ResB>(
    mut inner: S,
    req: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, BoxError>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    inner
        .call(req)
        .await
        .map(|r| r.map(CacheBody::inner))
        .map_err(Into::into)
}

fn copy<B>(shared: &Shared, head: bool) -> Response<CacheBody<B>> {
    let body = if head {
        CacheBody::empty()
    } else {
        CacheBody::full(shared.body.clone())
    };
    let mut res = Response::new(body);
    *res.status_mut() = shared.status;
    *res.version_mut() = shared.version;
    *res.headers_mut() = shared.headers.clone();
    res
}

/// Whether the response varies on a header in which this request differs from the leader's.
fn varies(shared: &Shared, headers: &HeaderMap) -> bool {
    match key::vary_names(&shared.headers) {
        Err(()) => true,
        Ok(names) => names.iter().any(|n| {
            let leader = key::vary_value(&shared.leader_headers, n);
            !key::vary_matches(headers, n, leader.as_deref())
        }),
    }
}

async fn lead<S, ReqB, ResB>(
    settings: &Settings,
    mut guard: LeaderGuard,
    mut inner: S,
    req: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, BoxError>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let leader_headers = req.headers().clone();
    let head = req.method() == http::Method::HEAD;
    let res = match inner.call(req).await {
        Ok(res) => res,
        Err(e) => {
            let e: BoxError = e.into();
            let rejection = find_rejection(&*e);
            guard.publish(State::Failed(LeaderFailed {
                message: e.to_string(),
                status: rejection.map_or(StatusCode::BAD_GATEWAY, palisade_core::Rejection::status),
                grpc_code: rejection
                    .map_or(GrpcCode::Unavailable, palisade_core::Rejection::grpc_code),
                retry_after: rejection.and_then(palisade_core::Rejection::retry_after),
            }));
            return Err(e);
        }
    };
    let (parts, body) = res.into_parts();
    let d = ResponseDirectives::from_headers(&parts.headers);
    if d.private || d.no_store {
        guard.publish(State::GoAlone);
        return Ok(Response::from_parts(parts, CacheBody::inner(body)));
    }
    let mut body = Box::pin(body);
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    if buf.len() > settings.max_body_bytes {
                        guard.publish(State::GoAlone);
                        return Ok(Response::from_parts(
                            parts,
                            CacheBody::prefixed(buf.freeze(), body),
                        ));
                    }
                }
                Err(frame) => {
                    // Trailers are not shared: followers go alone.
                    guard.publish(State::GoAlone);
                    let trailers = frame.into_trailers().ok().map(Box::new);
                    return Ok(Response::from_parts(
                        parts,
                        CacheBody::full_with_trailers(buf.freeze(), trailers),
                    ));
                }
            },
            Some(Err(e)) => {
                guard.publish(State::GoAlone);
                return Ok(Response::from_parts(
                    parts,
                    CacheBody::failed(buf.freeze(), e.into()),
                ));
            }
        }
    }
    let shared = Arc::new(Shared {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: buf.freeze(),
        leader_headers,
    });
    guard.publish(State::Done(shared.clone()));
    Ok(copy(&shared, head))
}
