//! Upstream groups: endpoints behind one pooled keep-alive client, picked by round robin or
//! power of two choices, with active health checks and passive outlier ejection (a Palisade
//! breaker per endpoint whose open wait grows with each consecutive ejection).
//!
//! tower's `balance::p2c` is the ecosystem's power-of-two-choices balancer, but it owns its
//! endpoints (`&mut self`, a `Discover` stream, a ready cache) and would need a `Buffer`
//! task to be shared by every connection; it also has no notion of health or of an ejection
//! cap. The same algorithm is written here over shared atomic counters: pick two distinct
//! eligible endpoints at random, send to the one with fewer requests in flight (`p2c`) or
//! of lower peak-EWMA latency × (requests in flight + 1) (`p2c_ewma`).

mod balance;
mod outlier;
mod send;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum_core::body::Body;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use palisade_breaker::{BreakerHandle, CircuitBreaker, CircuitBreakerLayer, State};
use palisade_core::BoxError;
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

use self::balance::{Ewma, nth_bit, p2c, weighted};
pub(crate) use self::outlier::{OutlierClassifier, breaker_config};
pub(crate) use self::send::UpstreamError;
use self::send::{HttpClient, Send};
use crate::config::{Balance, Protocol, Upstream};
use crate::proxy::TeTrailers;

impl Endpoint {
    fn ejected(&self) -> bool {
        self.breaker
            .as_ref()
            .is_some_and(|(_, h)| matches!(h.state(), State::Open | State::ForcedOpen))
    }
}

/// One endpoint of a group.
pub(crate) struct Endpoint {
    pub(crate) address: String,
    authority: Authority,
    in_flight: AtomicUsize,
    healthy: AtomicBool,
    /// Consecutive active-check results (positive: successes, negative: failures).
    streak: std::sync::atomic::AtomicI32,
    requests: AtomicU64,
    failures: AtomicU64,
    breaker: Option<(CircuitBreaker<Send, OutlierClassifier>, BreakerHandle)>,
    ejections: AtomicU32,
    /// Peak-EWMA response-head latency (for `p2c_ewma` and the status).
    latency: Ewma,
}

/// A named group of endpoints.
pub(crate) struct Group {
    pub(crate) name: Arc<str>,
    pub(crate) config: Upstream,
    pub(crate) endpoints: Vec<Endpoint>,
    send: Send,
    next: AtomicUsize,
    /// The origin of the latency averages' clocks.
    epoch: Instant,
    health_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(mut t) = self.health_task.lock()
            && let Some(t) = t.take()
        {
            t.abort();
        }
    }
}

/// What [`Group::call`] failed with.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No endpoint of the named group is healthy and not ejected.
    NoEndpoint(Arc<str>),
    Upstream(UpstreamError),
}

/// Decrements an endpoint's in-flight count when dropped.
struct InFlight(Arc<Group>, usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.endpoints[self.1]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Group {
    /// Builds the group (the health-check task is started by [`Group::start`]).
    pub(crate) fn new(name: &str, config: &Upstream) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.max_idle_per_endpoint)
            .set_host(true);
        if config.protocol == Protocol::H2 {
            builder.http2_only(true);
        }
        let send = Send {
            client: builder.build(connector),
            timeout: config.timeout,
        };
        let breaker_cfg = config.outlier.as_ref().and_then(|o| breaker_config(o).ok());
        let endpoints = config
            .endpoints
            .iter()
            .map(|a| {
                let breaker = breaker_cfg.as_ref().and_then(|c| {
                    let layer = CircuitBreakerLayer::builder()
                        .config(c.clone())
                        .classifier(OutlierClassifier)
                        .build()
                        .ok()?;
                    let handle = layer.handle();
                    Some((layer.layer(send.clone()), handle))
                });
                Endpoint {
                    address: a.clone(),
                    authority: Authority::try_from(a.as_str())
                        .unwrap_or_else(|_| Authority::from_static("invalid:1")),
                    in_flight: AtomicUsize::new(0),
                    healthy: AtomicBool::new(true),
                    streak: std::sync::atomic::AtomicI32::new(0),
                    requests: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    breaker,
                    ejections: AtomicU32::new(0),
                    latency: Ewma::default(),
                }
            })
            .collect();
        Arc::new(Self {
            name: name.into(),
            config: config.clone(),
            endpoints,
            send,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            health_task: std::sync::Mutex::new(None),
        })
    }

    /// Starts the active health checks, if configured.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.config.health_check.is_some() {
            let task = tokio::spawn(crate::health::run(Arc::downgrade(self)));
            if let Ok(mut t) = self.health_task.lock() {
                *t = Some(task);
            }
        }
    }

    pub(crate) fn client(&self) -> &HttpClient {
        &self.send.client
    }

    /// The endpoints that may take a request (bit i: endpoint i), and those of them whose
    /// breaker is to be bypassed because ejecting them would go over the cap.
    fn eligible(&self) -> (u64, u64) {
        let pct = self
            .config
            .outlier
            .as_ref()
            .map_or(100, |o| o.max_ejection_percent as usize);
        let cap = self.endpoints.len() * pct / 100;
        let mut ok = 0u64;
        let mut bypass = 0u64;
        let mut ejected = 0usize;
        for (i, e) in self.endpoints.iter().enumerate() {
            if !e.healthy.load(Ordering::Relaxed) {
                continue;
            }
            if e.ejected() {
                ejected += 1;
                if ejected > cap {
                    ok |= 1 << i;
                    bypass |= 1 << i;
                }
            } else {
                ok |= 1 << i;
            }
        }
        (ok, bypass)
    }

    fn pick(&self) -> Option<(usize, bool)> {
        let (ok, bypass) = self.eligible();
        let n = ok.count_ones();
        if n == 0 {
            return None;
        }
        let i = match self.config.load_balancing {
            Balance::RoundRobin => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed);
                if let Some(w) = &self.config.weights {
                    weighted(ok, w, turn as u64)?
                } else {
                    nth_bit(ok, (turn % n as usize) as u32)
                }
            }
            Balance::P2c | Balance::P2cEwma if n == 1 => nth_bit(ok, 0),
            Balance::P2c => p2c(ok, |i| {
                self.endpoints[i].in_flight.load(Ordering::Relaxed) as f64
            }),
            Balance::P2cEwma => {
                let now = self.now_ns();
                p2c(ok, |i| {
                    let e = &self.endpoints[i];
                    e.latency.cost(now) * (e.in_flight.load(Ordering::Relaxed) + 1) as f64
                })
            }
        };
        Some((i, bypass & (1 << i) != 0))
    }

    /// Sends `req` (its URI's path and query kept) to an endpoint of this group.
    pub(crate) async fn call(
        self: Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, CallError> {
        let Some((i, bypass)) = self.pick() else {
            return Err(CallError::NoEndpoint(Arc::clone(&self.name)));
        };
        let e = &self.endpoints[i];
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(e.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = Uri::from_parts(parts)
            .map_err(|x| CallError::Upstream(UpstreamError::Other(x.to_string())))?;
        *req.version_mut() = match self.config.protocol {
            Protocol::Http1 => http::Version::HTTP_11,
            Protocol::H2 => {
                if req.extensions().get::<TeTrailers>().is_some() {
                    req.headers_mut()
                        .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
                }
                http::Version::HTTP_2
            }
        };
        e.requests.fetch_add(1, Ordering::Relaxed);
        e.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(Arc::clone(&self), i);
        let sent = self.now_ns();
        let result = match (&e.breaker, bypass) {
            (Some((b, _)), false) => {
                let was_open = e.ejected();
                let r = b.clone().oneshot(req).await.map_err(|err: BoxError| {
                    match err.downcast::<UpstreamError>() {
                        Ok(u) => *u,
                        // The breaker refused: it opened between the pick and the call, or
                        // its half-open probes are all in flight.
                        Err(_) => UpstreamError::Ejected,
                    }
                });
                if !was_open && e.ejected() {
                    e.ejections.fetch_add(1, Ordering::Relaxed);
                }
                r
            }
            _ => self.send.clone().oneshot(req).await,
        };
        if !matches!(result, Err(UpstreamError::Ejected)) {
            let now = self.now_ns();
            e.latency.observe(now.saturating_sub(sent), now);
        }
        match result {
            Ok(res) => {
                if res.status().is_server_error() {
                    e.failures.fetch_add(1, Ordering::Relaxed);
                }
                Ok(res)
            }
            Err(UpstreamError::Ejected) => Err(CallError::Upstream(UpstreamError::Ejected)),
            Err(err) => {
                e.failures.fetch_add(1, Ordering::Relaxed);
                Err(CallError::Upstream(err))
            }
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records an active health-check result for endpoint `i`.
    pub(crate) fn record_check(
        &self,
        i: usize,
        ok: bool,
        healthy_after: u32,
        unhealthy_after: u32,
    ) {
        let e = &self.endpoints[i];
        let prev = e.streak.load(Ordering::Relaxed);
        let streak = match (ok, prev > 0) {
            (true, true) => prev.saturating_add(1),
            (true, false) => 1,
            (false, false) => prev.saturating_sub(1),
            (false, true) => -1,
        };
        e.streak.store(streak, Ordering::Relaxed);
        if streak >= healthy_after as i32 {
            e.healthy.store(true, Ordering::Relaxed);
        } else if -streak >= unhealthy_after as i32 {
            e.healthy.store(false, Ordering::Relaxed);
        }
    }

    /// The group's state, for `/health` and `/breakers`.
    pub(crate) fn status(&self) -> Value {
        let endpoints: Vec<Value> = self
            .endpoints
            .iter()
            .map(|e| {
                let breaker = e.breaker.as_ref().map(|(_, h)| {
                    let t = h.totals();
                    json!({
                        "state": h.state().as_str(),
                        "calls": t.calls,
                        "failed": t.failed,
                        "failure_rate": h.failure_rate(),
                    })
                });
                json!({
                    "address": e.address,
                    "healthy": e.healthy.load(Ordering::Relaxed),
                    "ejected": e.ejected(),
                    "in_flight": e.in_flight.load(Ordering::Relaxed),
                    "requests": e.requests.load(Ordering::Relaxed),
                    "failures": e.failures.load(Ordering::Relaxed),
                    "latency_ewma_ms": e.latency.cost(self.now_ns()) / 1e6,
                    "breaker": breaker,
                })
            })
            .collect();
        json!({
            "name": &*self.name,
            "load_balancing": match self.config.load_balancing { Balance::RoundRobin => "round_robin", Balance::P2c => "p2c", Balance::P2cEwma => "p2c_ewma" },
            "endpoints": endpoints,
        })
    }

    /// Endpoints that may take requests now.
    pub(crate) fn available(&self) -> usize {
        self.eligible().0.count_ones() as usize
    }
}
