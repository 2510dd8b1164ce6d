//! [`PolicyClient`]: outbound policies per upstream around an HTTP client.
//!
//! Each request goes through the stack of the `clients` entry for its host (URI authority,
//! else the `Host` header; `*.example.com` matches subdomains) and, among those, the longest
//! `path_prefix` that holds on segment boundaries (the first entry on a tie); a request no
//! entry takes goes to the transport as it is.
//!
//! The client order, outermost first, and why:
//!
//! 1. **total timeout** (`timeout`): the caller's whole budget, retries and backoff
//!    included; it puts the `Deadline` in the request extensions for the layers below.
//! 2. **retry** (`retry`, with its budget): each attempt goes through everything below, so
//!    the breaker counts every attempt and each attempt gets its own attempt timeout and
//!    bulkhead slot; a retry never outlives the deadline above.
//! 3. **breaker** (`breaker`): per upstream; an open breaker fails an attempt fast and
//!    retry sees a `CircuitOpen` it does not retry past its backoff.
//! 4. **attempt timeout** (`attempt_timeout`): one attempt's limit, written to the upstream
//!    as `grpc-timeout` (the smaller of it and what is left of the deadline) unless
//!    `outbound = false`; inside the breaker so a slow attempt counts as a failure.
//! 5. **bulkhead** (`bulkhead`): a slot is held only while an attempt is on the wire,
//!    until its response body ends.
//! 6. **fault** (`fault`, `palisade-chaos`): innermost, it stands in for the upstream, so
//!    every layer above meets an injected delay or failure exactly as it would a real one.
//!
//! Rejections are errors here (`CircuitOpen`, `BulkheadFull`, `Elapsed`: test them with
//! `err.is::<…>()`), as the caller is code, not a browser.
//!
//! The transport takes `http::Request<axum_core::body::Body>`: hyper-util's legacy client
//! built with `Client::builder(TokioExecutor::new()).build_http::<Body>()`, an axum `Router`
//! in tests, or any `tower` service (wrap a `reqwest::Client` by converting requests).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use axum_core::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, Uri};
use palisade_bulkhead::BulkheadBody;
use palisade_chaos::FaultBody;
use palisade_core::BoxError;
use palisade_retry::RetryBody;
use tower::ServiceBuilder;
use tower::util::{BoxCloneSyncService, Oneshot};
use tower_layer::Layer;
use tower_service::Service;

use crate::build::ClientLayers;
use crate::reload::{PolicyHandle, Rebuild};
use crate::set::PolicySet;

/// One client policy's stack over the transport.
pub type ClientStack = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

impl ClientLayers {
    /// Wraps `transport` in this client's layers, outermost first (absent layers are not
    /// there at all).
    pub(crate) fn stack<S, ResB>(&self, transport: S) -> ClientStack
    where
        S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let base = ServiceBuilder::new()
            .map_err(Into::<BoxError>::into)
            .map_response(|r: Response<ResB>| r.map(Body::new))
            .service(transport);
        let bulkhead = self.bulkhead.clone().map(|l| {
            ServiceBuilder::new()
                .map_response(|r: Response<BulkheadBody<Body>>| r.map(Body::new))
                .layer(l)
                .into_inner()
        });
        let fault = self.fault.clone().map(|l| {
            ServiceBuilder::new()
                .map_response(|r: Response<FaultBody<Body>>| r.map(Body::new))
                .layer(l)
                .into_inner()
        });
        let retry = self.retry.clone().map(|l| {
            ServiceBuilder::new()
                .layer(l)
                .map_request(|r: Request<RetryBody<Body>>| r.map(Body::new))
                .into_inner()
        });
        let svc = ServiceBuilder::new()
            .option_layer(self.timeout.clone())
            .option_layer(retry)
            .option_layer(self.breaker.clone())
            .option_layer(self.attempt_timeout.clone())
            .option_layer(bulkhead)
            .option_layer(fault)
            .service(base);
        BoxCloneSyncService::new(svc)
    }
}

impl PolicySet {
    /// The index of the client policy for a request, if any: the host must match; the
    /// longest matching `path_prefix` wins, then the first entry.
    pub(crate) fn client_for(&self, uri: &Uri, headers: &HeaderMap) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, c) in self.clients.iter().enumerate() {
            if !crate::matcher::Matcher::host_matches_head(&c.host, uri, headers) {
                continue;
            }
            let len = match &c.path_prefix {
                None => 0,
                Some(p) => {
                    let p = p.trim_end_matches('/');
                    match uri.path().strip_prefix(p) {
                        Some(rest) if rest.is_empty() || rest.starts_with('/') => p.len() + 1,
                        _ => continue,
                    }
                }
            };
            if best.is_none_or(|(_, l)| len > l) {
                best = Some((i, len));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// A layer applying a [`PolicyHandle`]'s client policies around a transport (see the
/// [module docs](crate::client)). Follows reloads.
#[derive(Debug, Clone)]
pub struct PolicyClientLayer {
    handle: PolicyHandle,
}

impl PolicyHandle {
    /// A layer applying the live set's client policies around a transport.
    pub fn client_layer(&self) -> PolicyClientLayer {
        PolicyClientLayer {
            handle: self.clone(),
        }
    }
}

/// The service of [`PolicyClientLayer`]: picks the client policy per request and calls
/// through its stack. Clones share the stacks and their state.
pub struct PolicyClient<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for PolicyClient<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for PolicyClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyClient")
            .field("clients", &self.shared.stacks.load().by_client.len())
            .finish_non_exhaustive()
    }
}

struct Shared<S> {
    transport: S,
    stacks: ArcSwap<Stacks>,
}

struct Stacks {
    set: Arc<PolicySet>,
    by_client: Vec<ClientStack>,
    /// The transport alone, for requests no client policy takes.
    bare: ClientStack,
}

impl<S, ResB> Shared<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn build(&self, set: &Arc<PolicySet>, old: Option<&Stacks>) -> Stacks {
        let stacks = set
            .clients
            .iter()
            .map(|c| {
                old.and_then(|o| {
                    o.set
                        .clients
                        .iter()
                        .position(|p| Arc::ptr_eq(&p.layers, &c.layers))
                        .and_then(|i| o.by_client.get(i).cloned())
                })
                .unwrap_or_else(|| c.layers.stack(self.transport.clone()))
            })
            .collect();
        let bare = old.map_or_else(
            || ClientLayers::default().stack(self.transport.clone()),
            |o| o.bare.clone(),
        );
        Stacks {
            set: Arc::clone(set),
            by_client: stacks,
            bare,
        }
    }
}

impl<S, ResB> Rebuild for Shared<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn rebuild(&self, set: &Arc<PolicySet>) {
        let old = self.stacks.load_full();
        self.stacks.store(Arc::new(self.build(set, Some(&old))));
    }
}

impl<S, ResB> Layer<S> for PolicyClientLayer
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Service = PolicyClient<S>;

    fn layer(&self, transport: S) -> PolicyClient<S> {
        let set = self.handle.current();
        let bare = ClientLayers::default().stack(transport.clone());
        let shared = Arc::new(Shared {
            transport,
            stacks: ArcSwap::from_pointee(Stacks {
                set: Arc::clone(&set),
                by_client: Vec::new(),
                bare,
            }),
        });
        let first = shared.build(&set, Some(&shared.stacks.load()));
        shared.stacks.store(Arc::new(first));
        let weak: std::sync::Weak<dyn Rebuild> =
            Arc::downgrade(&(Arc::clone(&shared) as Arc<dyn Rebuild>));
        self.handle.register(weak);
        if !Arc::ptr_eq(&self.handle.current(), &set) {
            shared.rebuild(&self.handle.current());
        }
        PolicyClient { shared }
    }
}

/// The response future of [`PolicyClient`]: the chosen client stack, driven to readiness
/// and called.
pub type ClientFuture = Oneshot<ClientStack, Request<Body>>;

impl<S, B> Service<Request<B>> for PolicyClient<S>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = ClientFuture;

    /// Always ready: each client stack is driven to readiness inside the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ClientFuture {
        let stacks = self.shared.stacks.load();
        let stack = match stacks.set.client_for(req.uri(), req.headers()) {
            Some(i) => stacks.by_client[i].clone(),
            None => stacks.bare.clone(),
        };
        Oneshot::new(stack, req.map(Body::new))
    }
}
