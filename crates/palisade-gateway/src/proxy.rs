//! The forwarder: the innermost service of each route's stack. It rewrites the request for
//! the route's upstream group (path, host, headers, forwarding fields), streams it there
//! and streams the answer back; upstream failures become 502/504 problem responses.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::Limited;
use tower_service::Service;

use crate::config::{Forward, HeaderOps};
use crate::headers;
use crate::problem::problem;
use crate::release::Release;
use crate::rewrite;
use crate::upgrade;
use crate::upstream::{CallError, Group, UpstreamError};

/// What the listener knows about the connection, put in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    pub(crate) proto: &'static str,
}

/// Header edits, parsed once.
#[derive(Debug, Default)]
struct Ops {
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl Ops {
    fn new(ops: &HeaderOps) -> Self {
        Self {
            add: ops
                .add
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::try_from(k).ok()?,
                        HeaderValue::try_from(v).ok()?,
                    ))
                })
                .collect(),
            remove: ops
                .remove
                .iter()
                .filter_map(|k| HeaderName::try_from(k).ok())
                .collect(),
        }
    }

    fn apply(&self, h: &mut HeaderMap) {
        for n in &self.remove {
            h.remove(n);
        }
        for (n, v) in &self.add {
            h.insert(n.clone(), v.clone());
        }
    }
}

/// Where a route's requests go.
pub(crate) enum Target {
    Group(Arc<Group>),
    Split(Arc<Release>),
}

/// Marks a request whose client asked for trailers (`TE: trailers`); an HTTP/2 upstream
/// call carries it on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TeTrailers;

/// The upstream group that served a split route's request (or had no endpoint for it), in
/// the response's extensions for the access log; a route forwarding to one group is logged
/// under that group without it (no per-request insertion on that path).
#[derive(Debug, Clone)]
pub(crate) struct ServedBy(pub(crate) Arc<str>);

struct Inner {
    forward: Forward,
    target: Target,
    host: Option<HeaderValue>,
    request_ops: Ops,
    response_ops: Ops,
}

/// Forwards a route's requests to its upstream group; `None` answers 404 (a route without
/// a `forward` section).
#[derive(Clone)]
pub(crate) struct Forwarder {
    inner: Option<Arc<Inner>>,
}

impl Forwarder {
    pub(crate) fn new(forward: Option<&Forward>, target: Option<Target>) -> Self {
        let inner = forward.zip(target).map(|(f, target)| {
            Arc::new(Inner {
                host: f
                    .raw
                    .host
                    .as_deref()
                    .and_then(|h| HeaderValue::try_from(h).ok()),
                request_ops: Ops::new(&f.raw.request_headers),
                response_ops: Ops::new(&f.raw.response_headers),
                forward: f.clone(),
                target,
            })
        });
        Self { inner }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Service<Request<Body>> for Forwarder {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> BoxFuture {
        let Some(inner) = self.inner.clone() else {
            return Box::pin(async {
                Ok(problem(
                    StatusCode::NOT_FOUND,
                    "no route forwards this request",
                ))
            });
        };
        Box::pin(forward(inner, req))
    }
}

async fn forward(inner: Arc<Inner>, req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let limit = inner.forward.raw.max_request_body;
    let (mut parts, body) = req.into_parts();
    if body.size_hint().lower() > limit {
        return Ok(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is over this route's limit of {limit} bytes"),
        ));
    }
    // Path rewrite.
    if let Some(pq) = parts.uri.path_and_query()
        && let Some(new) = rewrite::rewrite(
            pq,
            inner.forward.raw.strip_prefix.as_deref(),
            inner.forward.rewrite.as_ref(),
            inner.forward.captures.as_ref(),
        )
    {
        let mut uri = parts.uri.into_parts();
        uri.path_and_query = Some(new);
        parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
    }
    // Headers.
    let upgrade = upgrade::take(&mut parts);
    let te_trailers = headers::remove_hop_by_hop(&mut parts.headers);
    if let Some(u) = &upgrade {
        u.restore(&mut parts.headers);
    }
    if let Some(info) = parts.extensions.get::<ConnInfo>() {
        headers::append_forwarded(&mut parts.headers, info.peer.ip(), info.proto);
    }
    if let Some(h) = &inner.host {
        parts.headers.insert(header::HOST, h.clone());
    } else if !parts.headers.contains_key(header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::try_from(a.as_str())
    {
        // An HTTP/2 request names its host in the URI; HTTP/1.1 upstreams need `Host`.
        parts.headers.insert(header::HOST, v);
    }
    if te_trailers {
        parts.extensions.insert(TeTrailers);
    }
    inner.request_ops.apply(&mut parts.headers);
    let body = Body::new(Limited::new(
        body,
        usize::try_from(limit).unwrap_or(usize::MAX),
    ));
    let req = Request::from_parts(parts, body);
    let result = match &inner.target {
        Target::Group(g) => Arc::clone(g).call(req).await,
        Target::Split(r) => r.call(req).await,
    };
    match result {
        Ok(mut res) => {
            let switched = upgrade.and_then(|u| u.finish(&mut res));
            let (mut parts, body) = res.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers);
            if let Some(protocol) = switched {
                upgrade::answer(&mut parts.headers, protocol);
            }
            inner.response_ops.apply(&mut parts.headers);
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(CallError::NoEndpoint(group)) => {
            let mut res = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("no healthy endpoint in upstream `{group}`"),
            );
            res.extensions_mut().insert(ServedBy(group));
            Ok(res)
        }
        Err(CallError::Upstream(e)) => {
            let status = match e {
                UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                UpstreamError::Ejected => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamError::Connect(_) | UpstreamError::Other(_) => StatusCode::BAD_GATEWAY,
            };
            tracing::debug!(target: "palisade_gateway", error = %e, "upstream call failed");
            Ok(problem(status, &e.to_string()))
        }
    }
}
