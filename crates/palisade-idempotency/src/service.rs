//! The [`Idempotency`] service.

use std::fmt::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use palisade_core::{
    AnyRejection, BoxError, IdempotencyConflict, IdempotencyKeyMissing, IdempotencyMismatch,
    KeyExtractor, Listeners, StoreUnavailable,
};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::error::RequestBodyTooLarge;
use crate::events::IdempotencyEvent;
use crate::future::ResponseFuture;
use crate::key::{IDEMPOTENT_REPLAYED, parse_key_header};
use crate::layer::Settings;
use crate::store::{Begin, Fingerprint, Store, StoreError, StoredResponse};

/// Longest pause between two looks at an in-flight key in wait mode.
const MAX_POLL: std::time::Duration = std::time::Duration::from_millis(50);

pub(crate) struct Shared<St, K> {
    pub(crate) settings: Settings,
    pub(crate) store: St,
    pub(crate) scope: K,
    pub(crate) listeners: Listeners<IdempotencyEvent>,
}

/// Middleware that executes a keyed POST/PATCH once and replays its stored response to
/// retries; see the [crate docs](crate) and [`IdempotencyLayer`](crate::IdempotencyLayer).
///
/// Clones share one configuration and store.
pub struct Idempotency<S, St, K> {
    inner: S,
    shared: Arc<Shared<St, K>>,
}

impl<S: Clone, St, K> Clone for Idempotency<S, St, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, St: fmt::Debug, K: fmt::Debug> fmt::Debug for Idempotency<S, St, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("settings", &self.shared.settings)
            .field("store", &self.shared.store)
            .field("scope", &self.shared.scope)
            .finish()
    }
}

impl<S, St, K> Idempotency<S, St, K> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<St, K>>) -> Self {
        Self { inner, shared }
    }
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, St, K, ReqBody, ResBody> Service<Request<ReqBody>> for Idempotency<S, St, K>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    St: Store,
    K: KeyExtractor<Request<ReqBody>>,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let settings = &self.shared.settings;
        if !settings.methods.contains(req.method()) {
            return ResponseFuture::pass(self.inner.call(req.map(RequestBody::original)));
        }
        let key = match parse_key_header(req.headers(), settings.mode, settings.max_key_len) {
            Ok(Some(key)) => key,
            Ok(None) if settings.require_key => {
                return ResponseFuture::error(IdempotencyKeyMissing::new().into());
            }
            Ok(None) => {
                return ResponseFuture::pass(self.inner.call(req.map(RequestBody::original)));
            }
            Err(e) => return ResponseFuture::error(e.into()),
        };
        let scope = match self.shared.scope.extract(&req) {
            Ok(scope) => scope,
            Err(e) => return ResponseFuture::error(e.into()),
        };
        let store_key = scoped_key(&scope, &key);
        // Move the readied service into the future, keep a fresh clone here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(run(self.shared.clone(), inner, req, store_key)))
    }
}

/// The store key: the scope (by its `Debug` form, length-prefixed so no two scope/key pairs
/// collide) followed by the client's key.
pub(crate) fn scoped_key<T: fmt::Debug>(scope: &T, key: &str) -> String {
    let mut scope_str = String::new();
    let _ = write!(scope_str, "{scope:?}");
    let mut out = String::with_capacity(scope_str.len() + key.len() + 8);
    let _ = write!(out, "{}:{scope_str}{key}", scope_str.len());
    out
}

/// SHA-256 over method, path and query, the selected headers and the body, each field
/// terminated so that no two different requests share an input.
pub(crate) fn fingerprint(
    method: &Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    selected: &[http::HeaderName],
    body: &[u8],
) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update([0]);
    h.update(
        uri.path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .as_bytes(),
    );
    h.update([0]);
    for name in selected {
        h.update(name.as_str().as_bytes());
        h.update([0]);
        for v in headers.get_all(name) {
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        h.update([0]);
    }
    h.update((body.len() as u64).to_be_bytes());
    h.update(body);
    h.finalize().into()
}

/// Releases the lock if the request ends without a stored response: handler error, panic,
/// or the future being dropped.
struct ReleaseGuard<St: Store> {
    store: St,
    key: String,
    token: u64,
    armed: bool,
}

impl<St: Store> Drop for ReleaseGuard<St> {
    fn drop(&mut self) {
        if !self.armed || self.store.release_now(&self.key, self.token) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = std::mem::take(&mut self.key);
            let token = self.token;
            handle.spawn(async move {
                if let Err(e) = store.release(&key, token).await {
                    tracing::warn!(target: "palisade", error = %e, "idempotency: could not release lock; it expires with its lease");
                }
            });
        }
    }
}

fn unavailable(retry_after: std::time::Duration, e: &StoreError) -> BoxError {
    tracing::warn!(target: "palisade", error = %e, "idempotency store unavailable");
    StoreUnavailable::new(Some(retry_after)).into()
}

pub(crate) fn replay<B>(record: &StoredResponse) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::full(record.body.clone()));
    *res.status_mut() = record.status;
    let headers = res.headers_mut();
    for (name, value) in &record.headers {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    res
}

/// Polls `call` to completion, renewing the lease every third of its length meanwhile.
/// The renewal runs concurrently with the handler; a failed or refused renewal is logged and
/// not retried before the next tick (the fencing token still protects the result).
pub(crate) async fn with_renewal<F, St: Store>(
    call: F,
    store: &St,
    key: &str,
    token: u64,
    lease: std::time::Duration,
) -> F::Output
where
    F: std::future::Future,
{
    let every = (lease / 3).max(std::time::Duration::from_millis(1));
    let mut call = std::pin::pin!(call);
    let mut tick = std::pin::pin!(tokio::time::sleep(every));
    let mut renewing: Option<crate::store::StoreFuture<'_, bool>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = call.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        loop {
            if let Some(fut) = renewing.as_mut() {
                match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => {
                        renewing = None;
                        if !matches!(r, Ok(true)) {
                            tracing::warn!(target: "palisade", ok = ?r.as_ref().ok(), "idempotency: lease renewal failed");
                        }
                    }
                }
            }
            if tick.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            tick.as_mut().reset(Instant::now() + every);
            renewing = Some(store.renew(key, token, lease));
        }
    })
    .await
}

enum Buffered<B> {
    Complete(Bytes),
    TooLarge(Bytes, Pin<Box<B>>),
}

async fn buffer_response<B>(body: B, limit: usize) -> Result<Buffered<B>, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = Box::pin(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Buffered::TooLarge(buf.freeze(), body));
            }
        }
        // Trailers are not stored.
    }
    Ok(Buffered::Complete(buf.freeze()))
}

async fn run<S, St, K, ReqBody, ResBody>(
    shared: Arc<Shared<St, K>>,
    mut inner: S,
    req: Request<ReqBody>,
    store_key: String,
) -> Result<Response<ResponseBody<ResBody>>, BoxError>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    St: Store,
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let settings = &shared.settings;
    let store = &shared.store;
    let events = &shared.listeners;
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, settings.max_request_body)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err(
                AnyRejection::new(RequestBodyTooLarge::new(settings.max_request_body)).into(),
            );
        }
        Err(e) => return Err(e),
    };
    let fp = fingerprint(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &settings.fingerprint_headers,
        &body,
    );
    let wait_until = settings.wait_in_flight.map(|w| Instant::now() + w);
    let mut pause = std::time::Duration::from_millis(1);
    let token = loop {
        let begin = store
            .begin(&store_key, &fp, settings.lease, settings.ttl)
            .await
            .map_err(|e| unavailable(settings.store_retry_after, &e))?;
        match begin {
            Begin::Started {
                fencing_token,
                took_over_expired,
            } => {
                if took_over_expired {
                    events.emit_with(|| IdempotencyEvent::LockExpired {
                        late_finisher: false,
                    });
                }
                break fencing_token;
            }
            Begin::Completed(record) => {
                events.emit_with(|| IdempotencyEvent::Replayed {
                    status: record.status,
                });
                return Ok(replay(&record));
            }
            Begin::Mismatch => {
                events.emit_with(|| IdempotencyEvent::Mismatch);
                return Err(IdempotencyMismatch::new().into());
            }
            Begin::InFlight => {
                let now = Instant::now();
                match wait_until {
                    Some(until) if now < until => {
                        tokio::time::sleep(pause.min(until - now)).await;
                        pause = (pause * 2).min(MAX_POLL);
                    }
                    _ => {
                        events.emit_with(|| IdempotencyEvent::Conflict);
                        return Err(IdempotencyConflict::new().into());
                    }
                }
            }
        }
    };
    let mut guard = ReleaseGuard {
        store: store.clone(),
        key: store_key,
        token,
        armed: true,
    };
    let req = Request::from_parts(parts, RequestBody::buffered(body));
    let call = inner.call(req);
    let res = if settings.renew_lease {
        with_renewal(call, store, &guard.key, token, settings.lease).await
    } else {
        call.await
    }
    .map_err(Into::into)?;
    let (parts, body) = res.into_parts();
    let status = parts.status;
    let body = match buffer_response(body, settings.max_response_body).await? {
        Buffered::Complete(body) => body,
        Buffered::TooLarge(prefix, rest) => {
            // Not storable: release (via the guard) and stream the response on.
            drop(guard);
            events.emit_with(|| IdempotencyEvent::Executed {
                status,
                stored: false,
            });
            return Ok(Response::from_parts(
                parts,
                ResponseBody::prefixed(prefix, rest),
            ));
        }
    };
    if status.is_server_error() && !settings.store_server_errors {
        drop(guard);
        events.emit_with(|| IdempotencyEvent::Executed {
            status,
            stored: false,
        });
        return Ok(Response::from_parts(parts, ResponseBody::full(body)));
    }
    let record = StoredResponse {
        status,
        headers: settings
            .stored_headers
            .iter()
            .flat_map(|name| {
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(move |v| (name.clone(), v.clone()))
            })
            .collect(),
        body: body.clone(),
    };
    let stored = match store
        .complete(&guard.key, token, &record, settings.ttl)
        .await
    {
        Ok(true) => true,
        Ok(false) => {
            events.emit_with(|| IdempotencyEvent::LockExpired {
                late_finisher: true,
            });
            false
        }
        Err(e) => {
            // The handler ran: answer its response. The lock stays until its lease ends
            // (retries meanwhile get 409), never a second execution because of the store.
            tracing::warn!(target: "palisade", error = %e, "idempotency: could not store response");
            false
        }
    };
    guard.armed = false;
    events.emit_with(|| IdempotencyEvent::Executed { status, stored });
    Ok(Response::from_parts(parts, ResponseBody::full(body)))
}
