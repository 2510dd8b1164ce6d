//! The gateway's live state: the policy set, the upstream groups and each route's stack
//! around its forwarder, swapped atomically on reload.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum_core::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use palisade_core::key::PeerAddr;
use palisade_core::rejection::RenderedRejection;
use palisade_policy::{Format, Loader, PolicyHandle, PolicySet, Problem, RouteStack};
use serde_json::Value;
use tower::ServiceExt;

use crate::config::{self, GatewayConfig};
use crate::headers::{self, X_REQUEST_ID};
use crate::proxy::{ConnInfo, Forwarder, ServedBy, Target};
use crate::release::Release;
use crate::upstream::Group;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A file, read again on reload.
    File(PathBuf),
    /// Text (the embedded demo configuration); reload re-applies it.
    Text(String),
}

impl Source {
    pub(crate) fn read(&self) -> Result<(String, Format), Vec<Problem>> {
        match self {
            Self::Text(t) => Ok((t.clone(), Format::Toml)),
            Self::File(p) => {
                let shown = p.display().to_string();
                let format = Format::from_path(p).ok_or_else(|| {
                    vec![Problem::new(
                        &shown,
                        "unknown extension: use .toml or .json",
                    )]
                })?;
                let text = std::fs::read_to_string(p)
                    .map_err(|e| vec![Problem::new(&shown, format!("cannot read: {e}"))])?;
                Ok((text, format))
            }
        }
    }
}

/// Parses `text` into a value tree (TOML or JSON).
pub(crate) fn parse(text: &str, format: Format) -> Result<Value, Problem> {
    match format {
        Format::Json => serde_json::from_str(text)
            .map_err(|e| Problem::new("<file>", format!("JSON syntax: {e}"))),
        Format::Toml => toml::from_str(text).map_err(|e| {
            Problem::new(
                "<file>",
                format!("TOML syntax: {}", e.to_string().trim_end()),
            )
        }),
        _ => Err(Problem::new(
            "<file>",
            "the gateway reads .toml and .json files",
        )),
    }
}

/// Reads and validates the whole file: the gateway's sections and the policy sections.
/// Every problem is returned, each with its field path.
pub(crate) fn check(
    text: &str,
    format: Format,
) -> Result<(GatewayConfig, PolicySet), Vec<Problem>> {
    let root = parse(text, format).map_err(|p| vec![p])?;
    let mut problems = Vec::new();
    let set = match Loader::new().load_str(text, format) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.extend(e.problems().iter().cloned());
            None
        }
    };
    let cfg = config::read(&root, &mut problems);
    match set {
        Some(set) if problems.is_empty() => Ok((cfg, set)),
        _ => Err(problems),
    }
}

/// Per-route counters, registered once.
pub(crate) struct RouteMeta {
    pub(crate) name: String,
    pub(crate) upstream: Option<String>,
    by_class: [metrics::Counter; 5],
    duration: metrics::Histogram,
}

impl RouteMeta {
    fn new(name: &str, upstream: Option<&str>) -> Self {
        let class = |c: &'static str| metrics::counter!("palisade_gateway_requests_total", "route" => name.to_owned(), "class" => c);
        Self {
            name: name.to_owned(),
            upstream: upstream.map(str::to_owned),
            by_class: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
            duration: metrics::histogram!("palisade_gateway_request_duration_seconds", "route" => name.to_owned()),
        }
    }
}

/// One route: its stack (policy layers around the forwarder) and its counters.
pub(crate) struct RouteEntry {
    stack: RouteStack,
    meta: Arc<RouteMeta>,
}

/// Everything one configuration built.
pub(crate) struct Table {
    pub(crate) set: Arc<PolicySet>,
    routes: Vec<RouteEntry>,
    pub(crate) groups: BTreeMap<String, Arc<Group>>,
    /// The splits of routes that forward to one, by route name.
    pub(crate) releases: BTreeMap<String, Arc<Release>>,
    pub(crate) config: GatewayConfig,
}

/// The gateway: the live table, the policy handle (whose layers keep their state across
/// reloads) and where the configuration comes from.
pub(crate) struct Gateway {
    table: ArcSwap<Table>,
    pub(crate) handle: PolicyHandle,
    source: Source,
    pub(crate) prometheus: Option<palisade_metrics::PrometheusHandle>,
    pub(crate) started: Instant,
}

impl Gateway {
    /// Loads the configuration; nothing is bound yet.
    pub(crate) fn new(
        source: Source,
        prometheus: Option<palisade_metrics::PrometheusHandle>,
    ) -> Result<Arc<Self>, Vec<Problem>> {
        let (text, format) = source.read()?;
        let (cfg, set) = check(&text, format)?;
        let handle = PolicyHandle::new(set);
        let table = build(handle.current(), cfg, None);
        Ok(Arc::new(Self {
            table: ArcSwap::from_pointee(table),
            handle,
            source,
            prometheus,
            started: Instant::now(),
        }))
    }

    /// The live table.
    pub(crate) fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Reads the configuration again and swaps it in. Listeners and the admin address stay
    /// as they are (a restart changes them); routes, policies and upstreams change. Groups
    /// whose settings did not change keep their pools, health and ejection state; policy
    /// layers whose settings did not change keep theirs. Open connections are kept.
    pub(crate) fn reload(&self) -> Result<(), Vec<Problem>> {
        let (text, format) = self.source.read()?;
        let root = parse(&text, format).map_err(|p| vec![p])?;
        let mut problems = Vec::new();
        let cfg = config::read(&root, &mut problems);
        if !problems.is_empty() {
            if let Err(e) = Loader::new().load_str(&text, format) {
                problems.splice(0..0, e.problems().iter().cloned());
            }
            return Err(problems);
        }
        self.handle
            .reload_str(&text, format)
            .map_err(|e| e.problems().to_vec())?;
        let old = self.table.load_full();
        self.table
            .store(Arc::new(build(self.handle.current(), cfg, Some(&old))));
        tracing::info!(target: "palisade_gateway", "configuration reloaded");
        Ok(())
    }

    /// Serves one request from a listener.
    pub(crate) async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        info: ConnInfo,
    ) -> Result<Response<Body>, Infallible> {
        let start = Instant::now();
        let id = headers::request_id(req.headers_mut());
        let (stack, meta) = {
            let t = self.table.load();
            let i = t.set.route_index(req.method(), req.uri(), req.headers());
            (t.routes[i].stack.clone(), Arc::clone(&t.routes[i].meta))
        };
        // The client's address, where Palisade's key extractors (`peer_ip`) and the split's
        // `trusted_peers` override access look for it.
        req.extensions_mut().insert(PeerAddr(info.peer));
        req.extensions_mut().insert(info);
        let method = req.method().clone();
        let Ok(mut res) = stack.oneshot(req.map(Body::new)).await;
        res.headers_mut().insert(&X_REQUEST_ID, id.clone());
        let status = res.status().as_u16();
        let elapsed = start.elapsed();
        meta.by_class[usize::from((status / 100).clamp(1, 5) - 1)].increment(1);
        meta.duration.record(elapsed.as_secs_f64());
        let served = res.extensions().get::<ServedBy>().map(|s| &*s.0);
        let rejection = res
            .extensions()
            .get::<RenderedRejection>()
            .map_or("-", |r| r.kind);
        tracing::info!(
            target: "palisade_gateway::access",
            %method,
            route = %meta.name,
            upstream = served.or(meta.upstream.as_deref()).unwrap_or("-"),
            status,
            micros = elapsed.as_micros() as u64,
            rejection,
            request_id = id.to_str().unwrap_or("-"),
        );
        Ok(res)
    }
}

/// Builds a table: groups (reusing `old`'s unchanged ones) and each route's stack.
fn build(set: Arc<PolicySet>, cfg: GatewayConfig, old: Option<&Table>) -> Table {
    let groups: BTreeMap<String, Arc<Group>> = cfg
        .upstreams
        .iter()
        .map(|(name, u)| {
            let reused = old
                .and_then(|t| t.groups.get(name))
                .filter(|g| g.config == *u)
                .cloned();
            let g = reused.unwrap_or_else(|| {
                let g = Group::new(name, u);
                g.start();
                g
            });
            (name.clone(), g)
        })
        .collect();
    let mut releases = BTreeMap::new();
    let routes = (0..set.route_count())
        .map(|i| {
            let name = set.route_name(i);
            let fwd = cfg.forwards.get(i).and_then(Option::as_ref);
            let target = fwd.and_then(|f| match &f.target {
                config::Target::Upstream(u) => groups.get(u).cloned().map(Target::Group),
                config::Target::Split(s) => {
                    let reused = old
                        .and_then(|t| t.releases.get(name))
                        .filter(|r| r.reusable(s, &groups))
                        .cloned();
                    let r = reused.or_else(|| {
                        let Some(r) = Release::new(name, s, &groups) else {
                            tracing::error!(target: "palisade_gateway", route = name, "cannot build the route's split; it answers 404");
                            return None;
                        };
                        r.start();
                        Some(r)
                    })?;
                    releases.insert(name.to_owned(), Arc::clone(&r));
                    Some(Target::Split(r))
                }
            });
            let label = fwd.map(|f| f.target.label());
            let stack = set.route_stack(i, Forwarder::new(fwd, target));
            RouteEntry {
                stack,
                meta: Arc::new(RouteMeta::new(name, label.as_deref())),
            }
        })
        .collect();
    Table {
        set,
        routes,
        groups,
        releases,
        config: cfg,
    }
}
