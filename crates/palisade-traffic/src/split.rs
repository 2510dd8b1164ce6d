//! The [`Split`] service and its builder.

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue, Request, Response};
use palisade_core::cookie::cookie_value_unquoted;
use palisade_core::key::GlobalKey;
use palisade_core::{
    Classifier, ConfigError, DefaultClassifier, InstanceName, KeyExtractor, Listeners,
};
use tower_service::Service;

use crate::access::OverrideAccess;
use crate::events::TrafficEvent;
use crate::future::ResponseFuture;
use crate::handle::{Control, SplitHandle, check_weights};
use crate::rng::Rng;
use crate::route::{BUCKETS, Route, RouteReason, Routing, Rule, bucket_of};
use crate::stats::ArmStats;

/// Routes each request to one of several arms (inner services of the same type).
///
/// Order of decision: override header/cookie naming an arm → first matching [`Rule`] →
/// weights, sticky on the key extractor's key if one is set and the key can be extracted →
/// weights, random (seedable). Drained arms are skipped by the override and the rules.
///
/// Arms of different types: box them (`tower::util::BoxCloneService`) or nest
/// `tower::util::Either`.
///
/// **Readiness**: like tower's `Steer`, `poll_ready` polls every arm and is ready only when
/// all are, because the arm is chosen in `call` (which is what lets a blue-green switch leave
/// in-flight requests on their arm).
pub struct Split<S, K = GlobalKey, C = DefaultClassifier> {
    arms: Vec<S>,
    key: Option<K>,
    classifier: C,
    control: Arc<Control>,
}

impl<S: Clone, K: Clone, C: Clone> Clone for Split<S, K, C> {
    fn clone(&self) -> Self {
        Self {
            arms: self.arms.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
            control: Arc::clone(&self.control),
        }
    }
}

impl<S, K, C> std::fmt::Debug for Split<S, K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("arms", &self.control.names)
            .field("weights", &self.control.routing.load().weights)
            .finish_non_exhaustive()
    }
}

impl Split<(), GlobalKey, DefaultClassifier> {
    /// Starts a builder.
    pub fn builder<S>() -> SplitBuilder<S> {
        SplitBuilder {
            arms: Vec::new(),
            weights: None,
            rules: Vec::new(),
            key: None,
            classifier: DefaultClassifier::new(),
            override_header: None,
            override_cookie: None,
            override_access: None,
            response_header: None,
            seed: 0x5EED,
            listeners: Listeners::new().named("traffic"),
        }
    }
}

impl<S, K, C> Split<S, K, C> {
    /// A handle controlling this split (and all its clones).
    pub fn handle(&self) -> SplitHandle {
        SplitHandle {
            control: Arc::clone(&self.control),
        }
    }

    /// The arms.
    pub fn get_ref(&self) -> &[S] {
        &self.arms
    }

    /// The arms, mutably.
    pub fn get_mut(&mut self) -> &mut [S] {
        &mut self.arms
    }

    /// Consumes the split, returning the arms.
    pub fn into_inner(self) -> Vec<S> {
        self.arms
    }

    /// Name of arm `i`.
    pub fn arm_name(&self, i: usize) -> &str {
        &self.control.names[i]
    }

    /// Decides the arm for `req` without calling it (no allocation; the random source
    /// advances when the weights decide randomly).
    pub fn route<B>(&self, req: &Request<B>) -> Route
    where
        K: KeyExtractor<Request<B>>,
    {
        let routing = self.control.routing.load();
        let control = &*self.control;
        let usable = |i: usize| !routing.drained[i];
        let by_name = |name: &str| control.index(name).filter(|&i| usable(i));
        let forced = control
            .override_header
            .as_ref()
            .and_then(|h| req.headers().get(h))
            .and_then(|v| v.to_str().ok())
            .and_then(by_name)
            .or_else(|| {
                let c = control.override_cookie.as_ref()?;
                cookie_value_unquoted(req.headers(), c).and_then(by_name)
            })
            // Checked only when an override names an arm: most requests carry none.
            .filter(|_| {
                control
                    .override_access
                    .as_ref()
                    .is_some_and(|a| a.allows(req))
            });
        if let Some(arm) = forced {
            return Route {
                arm,
                reason: RouteReason::Override,
            };
        }
        let (method, path) = (req.method(), req.uri().path());
        if let Some(rule) = routing
            .rules
            .iter()
            .find(|r| usable(r.arm) && r.matcher.matches(method, path))
        {
            return Route {
                arm: rule.arm,
                reason: RouteReason::Rule,
            };
        }
        if let Some(Ok(key)) = self.key.as_ref().map(|k| k.extract(req)) {
            return Route {
                arm: routing.arm_for_bucket(bucket_of(&key)),
                reason: RouteReason::Sticky,
            };
        }
        let bucket = (control.rng.next_u64() % u64::from(BUCKETS)) as u32;
        Route {
            arm: routing.arm_for_bucket(bucket),
            reason: RouteReason::Random,
        }
    }
}

impl<S, K, C, B, ResB> Service<Request<B>> for Split<S, K, C>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    K: KeyExtractor<Request<B>>,
    C: Classifier<Response<ResB>, S::Error>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let mut pending = false;
        for arm in &mut self.arms {
            match arm.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = self.route(&req);
        self.control
            .listeners
            .emit_named(|instance| TrafficEvent::Routed {
                instance,
                arm: Arc::clone(&self.control.names[route.arm]),
                reason: route.reason,
            });
        let fut = self.arms[route.arm].call(req);
        ResponseFuture::new(
            fut,
            route.arm,
            // Traffic routed by hand says nothing about the arm's health under its share.
            route.reason != RouteReason::Override,
            Arc::clone(&self.control),
            self.classifier.clone(),
        )
    }
}

/// Builder for [`Split`]; see [`Split::builder`].
#[must_use]
pub struct SplitBuilder<S, K = GlobalKey, C = DefaultClassifier> {
    arms: Vec<(Arc<str>, S)>,
    weights: Option<Vec<u32>>,
    rules: Vec<Rule>,
    key: Option<K>,
    classifier: C,
    override_header: Option<HeaderName>,
    override_cookie: Option<Arc<str>>,
    override_access: Option<OverrideAccess>,
    response_header: Option<HeaderName>,
    seed: u64,
    listeners: Listeners<TrafficEvent>,
}

impl<S, K, C> std::fmt::Debug for SplitBuilder<S, K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitBuilder")
            .field("arms", &self.arms.iter().map(|a| &a.0).collect::<Vec<_>>())
            .field("weights", &self.weights)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl<S, K, C> SplitBuilder<S, K, C> {
    /// Adds an arm. Order matters for stickiness: put the stable arm first and the canary
    /// last, so growing the canary never moves its keys back.
    pub fn arm(mut self, name: impl Into<Arc<str>>, service: S) -> Self {
        self.arms.push((name.into(), service));
        self
    }

    /// Relative weights, one per arm in order. Default: all traffic to the first arm.
    pub fn weights(mut self, weights: impl Into<Vec<u32>>) -> Self {
        self.weights = Some(weights.into());
        self
    }

    /// Adds a match rule (checked in insertion order, after the override).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Sticky weighting on this key: the same key always lands on the same arm for the
    /// same weights. Without it (or when extraction fails) the weights decide randomly.
    pub fn sticky<K2>(self, key: K2) -> SplitBuilder<S, K2, C> {
        SplitBuilder {
            arms: self.arms,
            weights: self.weights,
            rules: self.rules,
            key: Some(key),
            classifier: self.classifier,
            override_header: self.override_header,
            override_cookie: self.override_cookie,
            override_access: self.override_access,
            response_header: self.response_header,
            seed: self.seed,
            listeners: self.listeners,
        }
    }

    /// Classifier for the per-arm success rate (default: [`DefaultClassifier`]).
    pub fn classifier<C2>(self, classifier: C2) -> SplitBuilder<S, K, C2> {
        SplitBuilder {
            arms: self.arms,
            weights: self.weights,
            rules: self.rules,
            key: self.key,
            classifier,
            override_header: self.override_header,
            override_cookie: self.override_cookie,
            override_access: self.override_access,
            response_header: self.response_header,
            seed: self.seed,
            listeners: self.listeners,
        }
    }

    /// A request header whose value names the arm to use (off by default). Requires
    /// [`override_access`](Self::override_access): who may use it.
    pub fn override_header(mut self, name: HeaderName) -> Self {
        self.override_header = Some(name);
        self
    }

    /// A cookie whose value names the arm to use (off by default). Requires
    /// [`override_access`](Self::override_access): who may use it.
    pub fn override_cookie(mut self, name: impl Into<Arc<str>>) -> Self {
        self.override_cookie = Some(name.into());
        self
    }

    /// Who may use the override header or cookie: a shared secret, trusted peers, or
    /// explicitly anyone (see [`OverrideAccess`]). Other requests are routed as if they had
    /// no override. Requests routed by an override are never counted in the per-arm
    /// statistics (canary analysis).
    pub fn override_access(mut self, access: OverrideAccess) -> Self {
        self.override_access = Some(access);
        self
    }

    /// Adds a response header naming the arm that served (off by default).
    pub fn response_header(mut self, name: HeaderName) -> Self {
        self.response_header = Some(name);
        self
    }

    /// Seed of the random source used when no sticky key is available.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The split's instance name, carried by its events (and its canary controller's) so
    /// metrics label it (`traffic="checkout"`). Default `"traffic"`.
    pub fn name(mut self, name: impl Into<InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }

    /// Calls `f` for every [`TrafficEvent`].
    pub fn on_event(mut self, f: impl Fn(&TrafficEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }

    /// Validates and builds the split and its handle.
    ///
    /// # Errors
    /// No arm, duplicate or bad arm names, bad weights or rules, or an override header or
    /// cookie without [`override_access`](Self::override_access) (field `override_access`).
    pub fn build(self) -> Result<(Split<S, K, C>, SplitHandle), ConfigError> {
        let n = self.arms.len();
        if n == 0 {
            return Err(ConfigError::new("arms", "at least one arm is required"));
        }
        if (self.override_header.is_some() || self.override_cookie.is_some())
            && self.override_access.is_none()
        {
            return Err(ConfigError::new(
                "override_access",
                "is required with an override header or cookie: any client can send one, \
                 so say who may (a shared secret, trusted peer networks, or explicitly anyone)",
            ));
        }
        let mut names: Vec<Arc<str>> = Vec::with_capacity(n);
        let mut header_values = Vec::with_capacity(n);
        let mut arms = Vec::with_capacity(n);
        for (name, svc) in self.arms {
            if name.is_empty() || names.contains(&name) {
                return Err(ConfigError::new(
                    "arms",
                    format!("arm names must be unique and non-empty, got {name:?}"),
                ));
            }
            let hv = HeaderValue::from_str(&name).map_err(|_| {
                ConfigError::new(
                    "arms",
                    format!("arm name {name:?} must be a valid header value"),
                )
            })?;
            header_values.push(hv);
            names.push(name);
            arms.push(svc);
        }
        let weights = self.weights.unwrap_or_else(|| {
            let mut w = vec![0; n];
            w[0] = 100;
            w
        });
        let drained = vec![false; n];
        check_weights(&weights, &drained, n)?;
        let mut control = Control {
            names,
            header_values,
            routing: ArcSwap::from_pointee(Routing::new(
                weights.clone(),
                drained.clone(),
                Vec::new(),
            )),
            stats: (0..n).map(|_| ArmStats::default()).collect(),
            listeners: self.listeners,
            rng: Rng::new(self.seed),
            override_header: self.override_header,
            override_cookie: self.override_cookie,
            override_access: self.override_access,
            response_header: self.response_header,
        };
        let rules = control.compile_rules(&self.rules)?;
        control.routing = ArcSwap::from_pointee(Routing::new(weights, drained, rules));
        let control = Arc::new(control);
        let handle = SplitHandle {
            control: Arc::clone(&control),
        };
        Ok((
            Split {
                arms,
                key: self.key,
                classifier: self.classifier,
                control,
            },
            handle,
        ))
    }
}
