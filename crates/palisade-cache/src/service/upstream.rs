//! The paths that go upstream: a miss (coalesced per key), a conditional revalidation, the
//! background refresh of `stale-while-revalidate`, and invalidation after an unsafe method;
//! and storing what comes back.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{
    CONTENT_LENGTH, CONTENT_LOCATION, ETAG, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    LOCATION,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt;
use palisade_core::BoxError;
use tower_service::Service;

use crate::body::CacheBody;
use crate::directives::RequestDirectives;
use crate::events::CacheEvent;
use crate::flight::{self, Role};
use crate::key;
use crate::layer::Settings;
use crate::policy::{self, Label, Lookup, RequestInfo};
use crate::store::{CacheStore, StoredResponse};

use super::Res;

/// The miss path: with coalescing on, one upstream call per key at a time (see the
/// `flight` module); followers are answered from storage once the leader is done.
pub(super) async fn miss<S, St, ReqB, ResB>(
    s: &Arc<Settings<St>>,
    inner: S,
    req: Request<ReqB>,
    hash: u64,
) -> Result<Res<ResB>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Default + Send + 'static,
    St: CacheStore,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let Some(flights) = s.flights.as_ref().filter(|_| coalescible(&req)) else {
        return fetch(s, inner, req, hash).await;
    };
    let key_text = key::text(req.uri(), req.headers(), &s.key_headers);
    loop {
        match flights.join(hash, &key_text) {
            Role::Alone => return fetch(s, inner, req, hash).await,
            Role::Leader(guard) => {
                let res = fetch(s, inner, req, hash).await;
                guard.finish();
                return res;
            }
            Role::Follower(rx) => {
                if flight::wait(rx).await == flight::State::Abandoned {
                    continue; // the first follower to get here leads
                }
                s.listeners
                    .emit_named(|instance| CacheEvent::Coalesced { instance });
                let found = s.store.get(hash).await;
                let lookup = policy::lookup(
                    s,
                    req.method(),
                    req.uri(),
                    req.headers(),
                    found.as_deref(),
                    s.clock.now(),
                );
                return match lookup {
                    Lookup::Serve(res) => Ok(res),
                    Lookup::ServeAndRefresh(res, stored) => {
                        refresh(s, inner, &req, hash, stored);
                        Ok(res)
                    }
                    Lookup::Validate(stored) => revalidate(s, inner, req, hash, stored).await,
                    Lookup::Miss => fetch(s, inner, req, hash).await,
                };
            }
        }
    }
}

/// Whether a miss may wait for another request's upstream call: a plain `GET` (no
/// conditions, no range, no credentials), whose answer a stored response can give.
fn coalescible<B>(req: &Request<B>) -> bool {
    const EXCLUDED: [http::HeaderName; 7] = [
        http::header::AUTHORIZATION,
        http::header::RANGE,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        http::header::IF_MATCH,
        http::header::IF_UNMODIFIED_SINCE,
        http::header::IF_RANGE,
    ];
    req.method() == Method::GET && !EXCLUDED.iter().any(|h| req.headers().contains_key(h))
}

/// Goes upstream for a miss, stores the response when allowed and answers it.
async fn fetch<S, St, ReqB, ResB>(
    s: &Settings<St>,
    mut inner: S,
    req: Request<ReqB>,
    hash: u64,
) -> Result<Res<ResB>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: CacheStore,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    s.listeners
        .emit_named(|instance| CacheEvent::Miss { instance });
    let info = request_info(&req);
    let request_time = s.clock.now();
    let res = inner.call(req).await?;
    let response_time = s.clock.now();
    Ok(store_and_respond(
        s,
        &info,
        hash,
        res,
        request_time,
        response_time,
        Label::Miss,
    )
    .await)
}

/// Starts the one background refresh of `hash` (RFC 5861 §3) unless one is running.
pub(super) fn refresh<S, St, ReqB, ResB>(
    s: &Arc<Settings<St>>,
    mut inner: S,
    req: &Request<ReqB>,
    hash: u64,
    stored: Arc<StoredResponse>,
) where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: CacheStore,
    ReqB: Default + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    struct Running<St>(Arc<Settings<St>>, u64);
    impl<St> Drop for Running<St> {
        fn drop(&mut self) {
            self.0
                .refreshing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&self.1);
        }
    }
    if !s
        .refreshing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(hash)
    {
        return;
    }
    let running = Running(s.clone(), hash);
    let mut copy = Request::new(ReqB::default());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    // The refresh is the cache's own request: the client's conditions do not apply.
    copy.headers_mut().remove(http::header::CACHE_CONTROL);
    *copy.method_mut() = Method::GET;
    let task = async move {
        let s = running.0.clone();
        if std::future::poll_fn(|cx| inner.poll_ready(cx))
            .await
            .is_ok()
        {
            let _ = revalidate(&s, inner, copy, hash, stored).await;
        }
        drop(running);
    };
    tokio::spawn(task);
}

fn request_info<B>(req: &Request<B>) -> RequestInfo {
    RequestInfo {
        method: req.method().clone(),
        uri: req.uri().clone(),
        headers: req.headers().clone(),
        directives: RequestDirectives::from_headers(req.headers()),
    }
}

/// RFC 9111 §4.4: after an unsafe request succeeded, the target URI and same-origin
/// `Location`/`Content-Location` URIs are invalidated.
pub(super) async fn invalidate<St: CacheStore>(
    s: &Settings<St>,
    uri: &Uri,
    headers: &HeaderMap,
    response: &HeaderMap,
) {
    s.store
        .remove(key::hash(uri, headers, &s.key_headers))
        .await;
    let origin = uri
        .authority()
        .map(|a| a.as_str().as_bytes())
        .or_else(|| headers.get(HOST).map(http::HeaderValue::as_bytes));
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(target) = response
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Uri>().ok())
        else {
            continue;
        };
        let same_origin = match target.authority() {
            None => true,
            Some(a) => origin.is_some_and(|o| o.eq_ignore_ascii_case(a.as_str().as_bytes())),
        };
        if !same_origin {
            continue;
        }
        let Some(pq) = target.path_and_query() else {
            continue;
        };
        let Ok(relative) = Uri::builder().path_and_query(pq.clone()).build() else {
            continue;
        };
        let mut h = headers.clone();
        if let Some(a) = uri.authority().or(target.authority())
            && let Ok(v) = http::HeaderValue::from_str(a.as_str())
        {
            h.insert(HOST, v);
        }
        s.store
            .remove(key::hash(&relative, &h, &s.key_headers))
            .await;
        // The origin-form and absolute-form of the same resource hash differently; drop both.
        if let Some(authority) = uri.authority()
            && let Ok(absolute) = Uri::builder()
                .scheme(uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP))
                .authority(authority.clone())
                .path_and_query(pq.clone())
                .build()
        {
            s.store
                .remove(key::hash(&absolute, headers, &s.key_headers))
                .await;
        }
    }
    s.listeners
        .emit_named(|instance| CacheEvent::Invalidated { instance });
}

/// Sends a conditional request for `stored` and serves the result (RFC 9111 §4.3), or the
/// stale copy when the origin fails within a `stale-if-error` window (RFC 5861 §4).
pub(super) async fn revalidate<S, St, ReqB, ResB>(
    s: &Settings<St>,
    mut inner: S,
    mut req: Request<ReqB>,
    hash: u64,
    stored: Arc<StoredResponse>,
) -> Result<Res<ResB>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: CacheStore,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let info = request_info(&req);
    {
        let h = req.headers_mut();
        h.remove(IF_NONE_MATCH);
        h.remove(IF_MODIFIED_SINCE);
        if let Some(etag) = stored.headers.get(ETAG) {
            h.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = stored.headers.get(LAST_MODIFIED) {
            h.insert(IF_MODIFIED_SINCE, lm.clone());
        }
    }
    let request_time = s.clock.now();
    let result = inner.call(req).await;
    let response_time = s.clock.now();
    match result {
        Ok(res) if res.status() == StatusCode::NOT_MODIFIED => {
            let updated = Arc::new(policy::merge_304(
                s,
                &stored,
                res.headers(),
                request_time,
                response_time,
            ));
            put(s, &info, hash, updated.clone()).await;
            s.listeners
                .emit_named(|instance| CacheEvent::Revalidated { instance });
            let age = updated.current_age(s.clock.now());
            Ok(policy::serve(
                s,
                &info.method,
                &info.headers,
                &updated,
                age,
                Label::Revalidated,
            ))
        }
        Ok(res)
            if is_server_error(res.status())
                && policy::stale_if_error(&stored, &info.directives, response_time) =>
        {
            Ok(serve_stale(s, &info, &stored))
        }
        Err(_) if policy::stale_if_error(&stored, &info.directives, response_time) => {
            Ok(serve_stale(s, &info, &stored))
        }
        Err(e) => Err(e),
        Ok(res) => Ok(store_and_respond(
            s,
            &info,
            hash,
            res,
            request_time,
            response_time,
            Label::Miss,
        )
        .await),
    }
}

fn is_server_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

fn serve_stale<St, B>(s: &Settings<St>, info: &RequestInfo, stored: &StoredResponse) -> Res<B> {
    s.listeners
        .emit_named(|instance| CacheEvent::Stale { instance });
    let age = stored.current_age(s.clock.now());
    policy::serve(s, &info.method, &info.headers, stored, age, Label::Stale)
}

async fn put<St: CacheStore>(
    s: &Settings<St>,
    info: &RequestInfo,
    hash: u64,
    v: Arc<StoredResponse>,
) {
    let key_text = key::text(&info.uri, &info.headers, &s.key_headers);
    let current = s.store.get(hash).await;
    let ttl = policy::ttl(s, &v);
    let entry = policy::with_variant(s, current.as_deref(), key_text, v);
    s.store.insert(hash, Arc::new(entry), ttl).await;
}

/// Stores the response when RFC 9111 §3 allows and its body fits, and answers it.
async fn store_and_respond<St, B>(
    s: &Settings<St>,
    info: &RequestInfo,
    hash: u64,
    res: Response<B>,
    request_time: tokio::time::Instant,
    response_time: tokio::time::Instant,
    label: Label,
) -> Res<B>
where
    St: CacheStore,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = res.into_parts();
    let directives = policy::response_directives(s, &parts.headers);
    let not_stored = |reason| {
        s.listeners
            .emit_named(|instance| CacheEvent::NotStored { instance, reason });
    };
    let vary = match policy::storable(info, parts.status, &parts.headers, &directives) {
        Ok(v) => v,
        Err(reason) => {
            not_stored(reason);
            let mut res = Response::from_parts(parts, CacheBody::inner(body));
            policy::label_response(s, &mut res, label);
            return res;
        }
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body_bytes as u64) {
        not_stored("too-large");
        let mut res = Response::from_parts(parts, CacheBody::inner(body));
        policy::label_response(s, &mut res, label);
        return res;
    }
    let mut body = Box::pin(body);
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0usize;
    let collected = loop {
        match body.frame().await {
            None => break Ok(None),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    len += data.len();
                    if first.is_none() && buf.is_empty() {
                        first = Some(data);
                    } else {
                        if let Some(f) = first.take() {
                            buf.extend_from_slice(&f);
                        }
                        buf.extend_from_slice(&data);
                    }
                    if len > s.max_body_bytes {
                        break Err(None);
                    }
                }
                Err(frame) => break Ok(frame.into_trailers().ok()),
            },
            Some(Err(e)) => break Err(Some(e.into())),
        }
    };
    let data = first.unwrap_or_else(|| buf.freeze());
    let body = match collected {
        Ok(None) => data,
        Ok(Some(trailers)) => {
            not_stored("trailers");
            let mut res = Response::from_parts(
                parts,
                CacheBody::full_with_trailers(data, Some(Box::new(trailers))),
            );
            policy::label_response(s, &mut res, label);
            return res;
        }
        Err(None) => {
            not_stored("too-large");
            let mut res = Response::from_parts(parts, CacheBody::prefixed(data, body));
            policy::label_response(s, &mut res, label);
            return res;
        }
        Err(Some(e)) => {
            not_stored("body-error");
            let mut res = Response::from_parts(parts, CacheBody::failed(data, e));
            policy::label_response(s, &mut res, label);
            return res;
        }
    };
    let v = policy::stored_response(
        s,
        info,
        &parts,
        directives,
        &vary,
        &body,
        request_time,
        response_time,
    );
    if v.lifetime.is_zero() && !v.has_validator() && v.directives.stale_if_error.is_none() {
        not_stored("no-freshness");
    } else {
        let bytes = v.weight();
        put(s, info, hash, Arc::new(v)).await;
        s.listeners
            .emit_named(|instance| CacheEvent::Stored { instance, bytes });
    }
    let body = if info.method == Method::HEAD {
        CacheBody::empty()
    } else {
        CacheBody::full(body)
    };
    let mut res = Response::from_parts(parts, body);
    policy::label_response(s, &mut res, label);
    res
}
