//! The file, in code: [`Policy::builder`] and [`PolicySet::builder`].
//!
//! ```
//! use std::time::Duration;
//! use palisade_policy::{Matcher, Policy, PolicySet};
//! use palisade_breaker::BreakerConfig;
//! use palisade_timeout::TimeoutConfig;
//!
//! let mut breaker = BreakerConfig::default();
//! breaker.minimum_calls = 5;
//! let set = PolicySet::builder()
//!     .defaults(Policy::builder().timeout(TimeoutConfig::new(Duration::from_secs(5))).build()?)
//!     .route(
//!         "orders",
//!         Matcher::path("/orders/{id}").unwrap(),
//!         Policy::builder().breaker(breaker).build()?,
//!     )
//!     .fallback(Policy::default())
//!     .build()?;
//! assert_eq!(set.route_names(), ["orders", "fallback"]);
//! // The same checks as a file, with the same field paths:
//! let err = Policy::builder().timeout(TimeoutConfig::new(Duration::ZERO)).build().unwrap_err();
//! assert_eq!(err.problems()[0].path, "timeout.timeout");
//! # Ok::<(), palisade_policy::PolicyError>(())
//! ```

use std::collections::BTreeMap;

use palisade_breaker::BreakerConfig;
use palisade_bulkhead::BulkheadConfig;
use palisade_cache::CacheConfig;
use palisade_chaos::FaultConfig;
use palisade_idempotency::IdempotencyConfig;
use palisade_ratelimit::RateLimitConfig;
use palisade_retry::RetryConfig;
use palisade_timeout::TimeoutConfig;
use palisade_toggle::Provider;

use crate::build::{self, Context, Reporter};
use crate::error::{PolicyError, Problem, join};
use crate::matcher::Matcher;
use crate::merge::{self, Origin};
use crate::policy::{Policy, Section};
use crate::schema::{RawFile, RawRoute, SECTIONS};
use crate::set::{Loader, PolicySet};

impl Policy {
    /// A builder of a policy in code: the same sections as a file, typed.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }
}

/// Builds a [`Policy`]; [`build`](Self::build) checks every section with its pattern
/// crate's own constructor, as loading a file does.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PolicyBuilder {
    policy: Policy,
    off: Vec<String>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, config: $ty) -> Self {
            self.policy.$name = Some(Section::On(config));
            self
        }
    )*};
}

impl PolicyBuilder {
    setters! {
        /// The rate limit (quotas, key, RateLimit fields).
        rate_limit: RateLimitConfig;
        /// The total timeout. Unlike a file, `TimeoutConfig`'s own `insert_deadline`
        /// (default `true`) is kept: set it to `false` when nothing inside reads the
        /// `Deadline`.
        timeout: TimeoutConfig;
        /// Idempotency keys.
        idempotency: IdempotencyConfig;
        /// The circuit breaker.
        breaker: BreakerConfig;
        /// The bulkhead.
        bulkhead: BulkheadConfig;
        /// Clients: retry (+ budget).
        retry: RetryConfig;
        /// Clients: the timeout of each attempt.
        attempt_timeout: TimeoutConfig;
        /// Fault injection, innermost.
        fault: FaultConfig;
        /// Servers: a shared HTTP cache in memory.
        cache: CacheConfig;
    }

    /// Gate the route on the boolean flag `flag` (404 while off); the set needs a flag
    /// provider ([`PolicySetBuilder::flags`]).
    pub fn gate(mut self, flag: impl Into<String>) -> Self {
        self.policy.gate = Some(Section::On(flag.into()));
        self
    }

    /// Removes the layer `section` (`"breaker"`, …) that a less specific level would give,
    /// like `breaker = false` in a file.
    pub fn off(mut self, section: &str) -> Self {
        self.off.push(section.to_owned());
        self
    }

    /// Inherit from the named policy `name` of the set (routes and clients only).
    pub fn inherit(mut self, name: impl Into<String>) -> Self {
        self.policy.inherits = Some(name.into());
        self
    }

    /// Checks every section; the problems name the field (`timeout.timeout`).
    pub fn build(self) -> Result<Policy, PolicyError> {
        let mut policy = self.policy;
        let mut problems = Vec::new();
        for s in &self.off {
            match s.as_str() {
                "rate_limit" => policy.rate_limit = Some(Section::Off),
                "gate" => policy.gate = Some(Section::Off),
                "timeout" => policy.timeout = Some(Section::Off),
                "idempotency" => policy.idempotency = Some(Section::Off),
                "breaker" => policy.breaker = Some(Section::Off),
                "bulkhead" => policy.bulkhead = Some(Section::Off),
                "retry" => policy.retry = Some(Section::Off),
                "attempt_timeout" => policy.attempt_timeout = Some(Section::Off),
                "fault" => policy.fault = Some(Section::Off),
                "cache" => policy.cache = Some(Section::Off),
                other => problems.push(Problem::new(
                    other,
                    format!("unknown section (known: {})", SECTIONS.join(", ")),
                )),
            }
        }
        let mut sections = policy.sections();
        // The flag is looked up when the set is built, with its provider.
        sections.remove("gate");
        let eff = sections
            .iter()
            .filter_map(|(k, v)| {
                let name = SECTIONS.iter().find(|s| **s == k.as_str())?;
                merge::merge([(Origin::Route, Some(v))]).map(|m| (*name, m))
            })
            .collect();
        let mut rep = Reporter {
            at: "",
            instance: "",
            problems: &mut problems,
        };
        build::server(&eff, &Context::default(), &mut rep);
        build::client(&eff, &mut rep);
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError::new(problems))
        }
    }
}

impl PolicySet {
    /// A builder of a set in code: the same structure as a file.
    pub fn builder() -> PolicySetBuilder {
        PolicySetBuilder::default()
    }
}

/// Builds a [`PolicySet`] from [`Policy`] values: `defaults`, named policies, routes in
/// match order, the mandatory fallback and clients, with the same inheritance, checks,
/// explanation and lints as a file. Problems are reported at the place a file would have
/// them (`routes[1].timeout.timeout`).
#[derive(Debug, Default)]
#[must_use]
pub struct PolicySetBuilder {
    defaults: Option<Policy>,
    policies: BTreeMap<String, Policy>,
    routes: Vec<(String, Matcher, Policy)>,
    fallback: Option<Policy>,
    clients: Vec<(String, Option<String>, Policy)>,
    loader: Loader,
}

impl PolicySetBuilder {
    /// What every route, client and the fallback inherit.
    pub fn defaults(mut self, policy: Policy) -> Self {
        self.defaults = Some(policy);
        self
    }
    /// A named policy, inherited through [`PolicyBuilder::inherit`].
    pub fn policy(mut self, name: impl Into<String>, policy: Policy) -> Self {
        self.policies.insert(name.into(), policy);
        self
    }
    /// A route named `name` (the key that keeps its state across reloads); routes are tried
    /// in the order added.
    pub fn route(mut self, name: impl Into<String>, matcher: Matcher, policy: Policy) -> Self {
        self.routes.push((name.into(), matcher, policy));
        self
    }
    /// The policy of every request no route matches (required).
    pub fn fallback(mut self, policy: Policy) -> Self {
        self.fallback = Some(policy);
        self
    }
    /// An outbound policy for `host`, or `host` + `path_prefix`.
    pub fn client(
        mut self,
        host: impl Into<String>,
        path_prefix: Option<&str>,
        policy: Policy,
    ) -> Self {
        self.clients
            .push((host.into(), path_prefix.map(str::to_owned), policy));
        self
    }
    /// The flag provider that gated routes read.
    pub fn flags(mut self, provider: impl Provider) -> Self {
        self.loader = self.loader.flags(provider);
        self
    }
    /// Checks and builds the set.
    pub fn build(self) -> Result<PolicySet, PolicyError> {
        let mut problems = Vec::new();
        let mut file = RawFile {
            defaults: self
                .defaults
                .as_ref()
                .map(Policy::sections)
                .unwrap_or_default(),
            ..RawFile::default()
        };
        if self.defaults.as_ref().is_some_and(|d| d.inherits.is_some()) {
            problems.push(Problem::new("defaults.policy", "defaults inherit nothing"));
        }
        for (name, p) in &self.policies {
            if p.inherits.is_some() {
                problems.push(Problem::new(
                    join(&join("policies", name), "policy"),
                    "a named policy inherits only the defaults",
                ));
            }
            file.policies.insert(name.clone(), p.sections());
        }
        let policies = &self.policies;
        let mut entry = |at: String, name: String, matcher: Matcher, p: &Policy, up| {
            if let Some(n) = &p.inherits
                && !policies.contains_key(n)
            {
                problems.push(Problem::new(
                    join(&at, "policy"),
                    format!("no policy named `{n}`"),
                ));
            }
            RawRoute {
                at,
                name,
                matcher,
                policy: p.inherits.clone(),
                sections: p.sections(),
                upstream: up,
            }
        };
        let mut duplicates = Vec::new();
        for (i, (name, m, p)) in self.routes.iter().enumerate() {
            let r = entry(format!("routes[{i}]"), name.clone(), m.clone(), p, None);
            if file.routes.iter().any(|o| o.name == r.name) {
                duplicates.push(Problem::new(
                    join(&r.at, "name"),
                    format!("`{name}` names two routes; route names must be unique"),
                ));
            }
            file.routes.push(r);
        }
        match &self.fallback {
            Some(p) => {
                file.fallback = Some(entry(
                    "fallback".into(),
                    "fallback".into(),
                    Matcher::Always,
                    p,
                    None,
                ));
            }
            None => duplicates.push(Problem::new(
                "fallback",
                "is required: the policy of every request no route matches",
            )),
        }
        for (i, (host, prefix, p)) in self.clients.iter().enumerate() {
            let name = format!("{host}{}", prefix.as_deref().unwrap_or(""));
            let up = Some((host.clone(), prefix.clone()));
            let c = entry(format!("clients[{i}]"), name, Matcher::host(host), p, up);
            file.clients.push(c);
        }
        problems.extend(duplicates);
        if !problems.is_empty() {
            return Err(PolicyError::new(problems));
        }
        self.loader.load_raw(&file, None)
    }
}
