//! Release patterns as config: a route's `forward.split` becomes a `palisade-traffic`
//! [`Split`](palisade_traffic::Split) whose arms are upstream groups (canary weights, sticky
//! keys, override header, strangler-fig path rules, read/write split by method), with an
//! optional [`CanaryController`] ticking in a task (paused and resumed through the admin
//! API). Blue-green is a split of two arms switched and drained through the admin API;
//! requests pick their arm once, so those in flight finish on the side they started on.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum_core::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use palisade_core::key::KeyError;
use palisade_core::{Classifier, ConfiguredKey, ConfiguredKeyValue, KeyExtractor, Outcome};
use palisade_traffic::{CanaryController, CanaryState, RollbackReason, SplitHandle, Tick};
use serde_json::{Value, json};
use tower_service::Service;

use crate::config;
use crate::proxy::ServedBy;
use crate::upstream::{CallError, Group, UpstreamError};

/// One arm of a split: an upstream group as a service.
#[derive(Clone)]
pub(crate) struct Arm(Arc<Group>);

type CallFuture = Pin<Box<dyn Future<Output = Result<Response<Incoming>, CallError>> + Send>>;

impl Service<Request<Body>> for Arm {
    type Response = Response<Incoming>;
    type Error = CallError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> CallFuture {
        let group = Arc::clone(&self.0);
        Box::pin(async move {
            let name = Arc::clone(&group.name);
            let mut result = group.call(req).await;
            // The access log names the arm's group (a route forwarding to one group is
            // logged under that group without this).
            if let Ok(res) = &mut result {
                res.extensions_mut().insert(ServedBy(name));
            }
            result
        })
    }
}

/// The canary analysis counts 5xx answers and transport failures of an arm; a request body
/// over the route's limit is the client's fault.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArmClassifier;

impl Classifier<Response<Incoming>, CallError> for ArmClassifier {
    fn classify(&self, result: Result<&Response<Incoming>, &CallError>) -> Outcome {
        match result {
            Ok(res) if res.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(CallError::Upstream(UpstreamError::BodyTooLarge)) => Outcome::Ignored,
            Err(_) => Outcome::Failure,
        }
    }
}

/// The split's sticky key: the configured extractor, or none (the weights decide at random).
#[derive(Debug, Clone)]
pub(crate) struct StickyKey(Option<ConfiguredKey>);

impl<B> KeyExtractor<Request<B>> for StickyKey {
    type Key = ConfiguredKeyValue;
    fn extract(&self, req: &Request<B>) -> Result<ConfiguredKeyValue, KeyError> {
        match &self.0 {
            Some(k) => k.extract(req),
            None => Err(KeyError::Missing { what: "sticky key" }),
        }
    }
}

type TrafficSplit = palisade_traffic::Split<Arm, StickyKey, ArmClassifier>;

/// A canary rollout in progress (or finished): its controller, ticked by a task.
struct CanaryRun {
    controller: Mutex<CanaryController>,
    paused: AtomicBool,
    last: Mutex<Option<Tick>>,
}

/// One route's split: the traffic split over its groups, its handle and its canary.
pub(crate) struct Release {
    pub(crate) route: String,
    pub(crate) config: config::Split,
    /// Locked only to pick the arm and start its call (never across an `.await`): the
    /// split's `call` needs `&mut`, and a clone per request would copy its arm list.
    split: Mutex<TrafficSplit>,
    pub(crate) handle: SplitHandle,
    groups: Vec<Arc<Group>>,
    canary: Option<CanaryRun>,
    /// The canary's analysis and the weight gauge's sampling.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

impl Release {
    /// Builds the split over `groups` (checked when the file was read, so errors here are
    /// `None`).
    pub(crate) fn new(
        route: &str,
        cfg: &config::Split,
        groups: &BTreeMap<String, Arc<Group>>,
    ) -> Option<Arc<Self>> {
        let arm_groups: Vec<Arc<Group>> = cfg
            .arms
            .iter()
            .map(|a| groups.get(&a.upstream).cloned())
            .collect::<Option<_>>()?;
        let mut routing = cfg.routing.clone();
        if routing.name.is_none() {
            // The split's instance name (events, metrics): the route's, in visible ASCII.
            let name: String = route
                .chars()
                .take(128)
                .map(|c| if c.is_ascii_graphic() { c } else { '_' })
                .collect();
            routing.name = Some(name).filter(|n| !n.is_empty());
        }
        let sticky = StickyKey(cfg.sticky.as_ref().and_then(|k| k.build().ok()));
        let builder = cfg
            .arms
            .iter()
            .zip(&arm_groups)
            .fold(palisade_traffic::Split::builder(), |b, (a, g)| {
                b.arm(a.name.as_str(), Arm(Arc::clone(g)))
            })
            .sticky(sticky)
            .classifier(ArmClassifier)
            .with_config(routing)
            .ok()?;
        let (split, handle) = builder.build().ok()?;
        let canary = match &cfg.canary {
            Some(c) => Some(CanaryRun {
                controller: Mutex::new(
                    CanaryController::start(handle.clone(), &c.stable, &c.canary, c.config.clone())
                        .ok()?,
                ),
                paused: AtomicBool::new(c.paused),
                last: Mutex::new(None),
            }),
            None => None,
        };
        Some(Arc::new(Self {
            route: route.to_owned(),
            config: cfg.clone(),
            split: Mutex::new(split),
            handle,
            groups: arm_groups,
            canary,
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// Whether `self` can carry on for `cfg` after a reload: same settings, same groups.
    pub(crate) fn reusable(
        &self,
        cfg: &config::Split,
        groups: &BTreeMap<String, Arc<Group>>,
    ) -> bool {
        self.config == *cfg
            && cfg
                .arms
                .iter()
                .zip(&self.groups)
                .all(|(a, g)| groups.get(&a.upstream).is_some_and(|x| Arc::ptr_eq(x, g)))
    }

    /// Starts sampling the arms' weights into `palisade_canary_weight_percent{traffic, arm}`
    /// and the canary's analysis task, if there is a canary.
    pub(crate) fn start(self: &Arc<Self>) {
        let gauge = palisade_metrics::watch_canary(self.handle.clone(), Duration::from_secs(1));
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(gauge);
        }
        let Some(c) = &self.cfg_canary() else { return };
        let period = c.config.interval;
        let weak: Weak<Self> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                if !this.tick() {
                    return;
                }
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
    }

    fn cfg_canary(&self) -> Option<&config::Canary> {
        self.config.canary.as_ref()
    }

    /// One analysis unless paused; `false` once the rollout has finished.
    fn tick(&self) -> bool {
        let Some(run) = &self.canary else {
            return false;
        };
        if run.paused.load(Ordering::Relaxed) {
            return true;
        }
        let Ok(mut c) = run.controller.lock() else {
            return false;
        };
        let t = c.tick();
        drop(c);
        tracing::info!(target: "palisade_gateway", route = %self.route, tick = ?t, "canary analysis");
        if let Ok(mut last) = run.last.lock() {
            *last = Some(t);
        }
        !matches!(t, Tick::Promoted | Tick::RolledBack(_) | Tick::Finished)
    }

    /// Pauses or resumes the canary analysis; `false` if the route has no canary.
    pub(crate) fn set_paused(&self, paused: bool) -> bool {
        self.canary.as_ref().is_some_and(|c| {
            c.paused.store(paused, Ordering::Relaxed);
            true
        })
    }

    /// Sends `req` to the arm the split picks.
    pub(crate) async fn call(&self, req: Request<Body>) -> Result<Response<Incoming>, CallError> {
        let future = {
            let mut split = self.split.lock().unwrap_or_else(PoisonError::into_inner);
            // The arms are always ready, so the split is: this only keeps the contract.
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(Err(e)) = split.poll_ready(&mut cx) {
                return Err(e);
            }
            split.call(req)
        };
        future.await
    }

    /// The split's state for `/canaries` and the status page.
    pub(crate) fn status(&self) -> Value {
        let weights = self.handle.weights();
        let arms: Vec<Value> = self
            .config
            .arms
            .iter()
            .zip(weights)
            .map(|(a, w)| {
                let stats = self.handle.stats(&a.name).unwrap_or_default();
                json!({
                    "name": a.name,
                    "upstream": a.upstream,
                    "weight": w,
                    "share": self.handle.share(&a.name).unwrap_or(0.0),
                    "drained": self.handle.is_drained(&a.name).unwrap_or(false),
                    "calls": stats.total(),
                    "failures": stats.failures,
                })
            })
            .collect();
        let canary = self.canary.as_ref().zip(self.cfg_canary()).map(|(run, c)| {
            let state = run
                .controller
                .lock()
                .map_or(CanaryState::Promoted, |x| x.state());
            let (name, percent, reason) = match state {
                CanaryState::Progressing { percent } => ("progressing", percent, None),
                CanaryState::Promoted => ("promoted", 100, None),
                CanaryState::RolledBack(r) => ("rolled_back", 0, Some(reason_text(r))),
                _ => ("unknown", 0, None),
            };
            json!({
                "stable": c.stable,
                "canary": c.canary,
                "steps": c.config.steps,
                "interval_ms": c.config.interval.as_millis() as u64,
                "state": name,
                "percent": percent,
                "rollback_reason": reason,
                "paused": run.paused.load(Ordering::Relaxed),
            })
        });
        json!({ "route": self.route, "arms": arms, "canary": canary })
    }
}

fn reason_text(r: RollbackReason) -> String {
    match r {
        RollbackReason::ErrorRate { canary, stable } => format!(
            "error rate {:.1}% against stable's {:.1}%",
            canary * 100.0,
            stable * 100.0
        ),
        RollbackReason::Latency { p99, bound } => format!("p99 {p99:?} over {bound:?}"),
        _ => format!("{r:?}"),
    }
}
