//! The [`Idempotency`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body::Body;
use palisade_core::rejection::RenderedRejection;
use palisade_core::{
    AnyRejection, BoxError, Elapsed, IdempotencyConflict, IdempotencyKeyMissing,
    IdempotencyMismatch, KeyExtractor, Listeners, StoreUnavailable,
};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tower_service::Service;

use crate::body::{Buffered, RequestBody, ResponseBody, buffer_response, read_request};
use crate::error::{HandlerAborted, OutcomeUnknown};
use crate::events::IdempotencyEvent;
use crate::future::ResponseFuture;
use crate::key::{IDEMPOTENT_REPLAYED, parse_key_header};
use crate::layer::Settings;
use crate::lease::{OUTCOME_MARKER, ReleaseGuard, is_outcome_unknown, persist, with_renewal};
use crate::scope::{ScopeKey, store_key};
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
    K::Key: ScopeKey,
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
        let store_key = store_key(&scope, &key);
        // Move the readied service into the future, keep a fresh clone here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(run(self.shared.clone(), inner, req, store_key)))
    }
}

/// SHA-256 over the store key (so the scope is part of it), method, path and query, the
/// selected headers and the body, each field terminated so that no two different requests
/// share an input.
pub(crate) fn fingerprint(
    store_key: &str,
    method: &Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    selected: &[http::HeaderName],
    body: &[u8],
) -> Fingerprint {
    let mut h = Sha256::new();
    h.update((store_key.len() as u64).to_be_bytes());
    h.update(store_key.as_bytes());
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

type Answer<B> = Result<Response<ResponseBody<B>>, BoxError>;

async fn run<S, St, K, ReqBody, ResBody>(
    shared: Arc<Shared<St, K>>,
    inner: S,
    req: Request<ReqBody>,
    store_key: String,
) -> Answer<ResBody>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    St: Store,
    K: Send + Sync + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let settings = &shared.settings;
    let store = &shared.store;
    let events = &shared.listeners;
    let (parts, body) = req.into_parts();
    let body = read_request(body, settings.max_request_body).await?;
    let fp = fingerprint(
        &store_key,
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
                    events.emit_named(|instance| IdempotencyEvent::LockExpired {
                        instance,
                        late_finisher: false,
                    });
                }
                break fencing_token;
            }
            Begin::Completed(record) if is_outcome_unknown(&record) => {
                return Err(AnyRejection::new(OutcomeUnknown::new()).into());
            }
            Begin::Completed(record) => {
                events.emit_named(|instance| IdempotencyEvent::Replayed {
                    instance,
                    status: record.status,
                });
                return Ok(replay(&record));
            }
            Begin::Mismatch => {
                events.emit_named(|instance| IdempotencyEvent::Mismatch { instance });
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
                        events.emit_named(|instance| IdempotencyEvent::Conflict { instance });
                        return Err(IdempotencyConflict::new().into());
                    }
                }
            }
        }
    };
    // From here on the handler runs to completion detached from the caller: dropping this
    // future (client gone, outer timeout, a hedge that lost) must not abandon an execution
    // that may already have had its effect, nor release the key for a second one.
    let guard = ReleaseGuard {
        store: store.clone(),
        key: store_key,
        token,
        armed: true,
    };
    let req = Request::from_parts(parts, RequestBody::buffered(body));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(execute(shared.clone(), inner, req, guard, tx));
    rx.await
        .unwrap_or_else(|_| Err(HandlerAborted::new().into()))
}

/// The detached part of a first execution: call the handler, buffer its response, store it
/// (with retries), all under lease renewal, then hand the response to the caller if it is
/// still there.
async fn execute<S, St, K, ReqBody, ResBody>(
    shared: Arc<Shared<St, K>>,
    mut inner: S,
    req: Request<RequestBody<ReqBody>>,
    mut guard: ReleaseGuard<St>,
    tx: tokio::sync::oneshot::Sender<Answer<ResBody>>,
) where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    St: Store,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let settings = &shared.settings;
    let store = &shared.store;
    let events = &shared.listeners;
    let token = guard.token;
    let work = async {
        let res = inner.call(req).await.map_err(Into::into)?;
        let (parts, body) = res.into_parts();
        let buffered = buffer_response(body, settings.max_response_body).await?;
        Ok::<_, BoxError>((parts, buffered))
    };
    let work = async {
        match settings.max_execution_time {
            Some(max) => tokio::time::timeout(max, work)
                .await
                .unwrap_or_else(|_| Err(AnyRejection::new(Elapsed::new(max)).into())),
            None => work.await,
        }
    };
    let key = guard.key.clone();
    let outcome = if settings.renew_lease {
        with_renewal(work, store, &key, token, settings.lease).await
    } else {
        work.await
    };
    let (parts, buffered) = match outcome {
        Ok(done) => done,
        Err(e) => {
            drop(guard); // handler error: release so the client can retry
            let _ = tx.send(Err(e));
            return;
        }
    };
    let status = parts.status;
    let not_stored = |parts, body| {
        events.emit_named(|instance| IdempotencyEvent::Executed {
            instance,
            status,
            stored: false,
        });
        Ok(Response::from_parts(parts, body))
    };
    let body = match buffered {
        Buffered::Complete(body) => body,
        Buffered::TooLarge(prefix, rest) => {
            // Not storable: release (via the guard) and stream the response on.
            drop(guard);
            let _ = tx.send(not_stored(parts, ResponseBody::prefixed(prefix, rest)));
            return;
        }
    };
    // A refusal rendered by a Palisade layer inside (429, 503, …) is not the handler's
    // result: never stored, whatever `store_server_errors` says.
    let rejection = parts.extensions.get::<RenderedRejection>().is_some();
    if rejection || (status.is_server_error() && !settings.store_server_errors) {
        drop(guard);
        let _ = tx.send(not_stored(parts, ResponseBody::full(body)));
        return;
    }
    let record = StoredResponse {
        status,
        headers: settings
            .stored_headers
            .iter()
            .filter(|name| **name != OUTCOME_MARKER)
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
    let first = store.complete(&key, token, &record, settings.ttl).await;
    let stored = matches!(first, Ok(true));
    if first.is_ok() {
        guard.armed = false;
    }
    match &first {
        Ok(true) => {}
        Ok(false) => events.emit_named(|instance| IdempotencyEvent::LockExpired {
            instance,
            late_finisher: true,
        }),
        Err(e) => {
            tracing::warn!(target: "palisade", error = %e, "idempotency: could not store response; retrying");
            events.emit_named(|instance| IdempotencyEvent::StoreFailed { instance });
        }
    }
    events.emit_named(|instance| IdempotencyEvent::Executed {
        instance,
        status,
        stored,
    });
    let _ = tx.send(Ok(Response::from_parts(parts, ResponseBody::full(body))));
    if first.is_err() {
        // Keep the lock (never release: the handler ran) and keep trying.
        guard.armed = false;
        persist(&shared, &key, token, &record).await;
    }
}
