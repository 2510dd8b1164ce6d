//! From effective sections to layers: each section is read into its pattern crate's typed
//! config and built with that crate's own constructor, so every range check lives in one
//! place (the pattern crate) and reports a field path that is prefixed here.

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_breaker::{BreakerConfig, CircuitBreakerLayer};
use palisade_bulkhead::{BulkheadConfig, BulkheadLayer};
use palisade_cache::{CacheConfig, CacheLayer, MemoryStore as CacheMemory};
use palisade_chaos::{FaultConfig, FaultLayer};
use palisade_core::ConfigError;
use palisade_idempotency::{IdempotencyConfig, MemoryStore};
use palisade_ratelimit::{ConfiguredKey, RateLimitConfig, RateLimitLayer};
use palisade_retry::{RetryConfig, RetryLayer};
use palisade_timeout::{TimeoutConfig, TimeoutLayer};
use palisade_toggle::{FlagGateLayer, Provider};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Problem, bracket_indices, join};
use crate::merge::{Merged, Origin};

/// The idempotency layer a policy builds (in-memory store, one per route).
pub(crate) type IdempotencyLayer = palisade_idempotency::IdempotencyLayer<
    MemoryStore,
    palisade_idempotency::scope::ConfiguredScope,
>;

/// The built layers of one server route; absent sections are `None` and cost nothing.
/// Clones of a layer share its state (breaker window, limiter buckets, bulkhead slots), so
/// keeping this `Arc` across a reload keeps the state.
#[derive(Debug, Default)]
pub(crate) struct ServerLayers {
    pub(crate) rate_limit: Option<RateLimitLayer<ConfiguredKey>>,
    pub(crate) gate: Option<FlagGateLayer>,
    pub(crate) cache: Option<CacheLayer<CacheMemory>>,
    pub(crate) timeout: Option<TimeoutLayer>,
    pub(crate) idempotency: Option<IdempotencyLayer>,
    pub(crate) breaker: Option<CircuitBreakerLayer>,
    pub(crate) bulkhead: Option<BulkheadLayer>,
    pub(crate) fault: Option<FaultLayer>,
}

/// What building needs besides the file.
#[derive(Clone, Default)]
pub(crate) struct Context {
    pub(crate) flags: Option<Arc<dyn Provider>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("flags", &self.flags.is_some())
            .finish()
    }
}

/// Reports problems of one consumer (a route, client or the fallback) at the place the bad
/// value was written: a field inherited from `defaults` or a policy is reported there, once.
pub(crate) struct Reporter<'a> {
    pub(crate) at: &'a str,
    /// The consumer's name (a route's, a client's): the instance name of its layers whose
    /// section names none, so two routes' bulkheads are two metric series. `""`: none.
    pub(crate) instance: &'a str,
    pub(crate) problems: &'a mut Vec<Problem>,
}

/// `name` as an instance name (1–128 visible ASCII characters): other characters become
/// `_` (`path /orders/{id}` → `path_/orders/{id}`), and it is cut at 128.
pub(crate) fn instance_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(palisade_core::config::MAX_INSTANCE_NAME)
        .collect()
}

impl Reporter<'_> {
    fn push(&mut self, section: &str, merged: &Merged, field: &str, message: String) {
        let field = bracket_indices(field);
        let first = field.split(['.', '[']).next().unwrap_or("");
        let first = if first.is_empty() {
            unknown_field_name(&message).unwrap_or("")
        } else {
            first
        };
        let base = match merged.origin(first) {
            Some(Origin::Default) => "defaults".to_owned(),
            Some(Origin::Policy(name)) => format!("policies.{name}"),
            Some(Origin::Route) | None => self.at.to_owned(),
        };
        let p = Problem::new(join(&join(&base, section), &field), message);
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    fn config(&mut self, section: &str, merged: &Merged, e: &ConfigError) {
        self.push(section, merged, e.field(), e.problem().to_owned());
    }

    /// The section read into its typed config, named after the consumer unless it names
    /// itself.
    fn typed<T: DeserializeOwned + Named>(&mut self, section: &str, merged: &Merged) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(&merged.value) {
            Ok(mut t) => {
                let name = t.name();
                if name.is_none() && !self.instance.is_empty() {
                    *name = Some(instance_name(self.instance));
                }
                Some(t)
            }
            Err(e) => {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                self.push(section, merged, &path, e.into_inner().to_string());
                None
            }
        }
    }
}

/// A layer config with an instance name.
pub(crate) trait Named {
    fn name(&mut self) -> &mut Option<String>;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name(&mut self) -> &mut Option<String> {
                &mut self.name
            }
        }
    )*};
}

named!(
    RateLimitConfig,
    CacheConfig,
    TimeoutConfig,
    IdempotencyConfig,
    BreakerConfig,
    BulkheadConfig,
    FaultConfig,
    RetryConfig
);

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Effective sections of one consumer, by section name.
pub(crate) type Effective = BTreeMap<&'static str, Merged>;

/// Builds a server route's layers; problems go to `rep`.
pub(crate) fn server(
    eff: &Effective,
    cx: &Context,
    rep: &mut Reporter<'_>,
) -> Option<ServerLayers> {
    let before = rep.problems.len();
    let mut out = ServerLayers::default();
    if let Some(m) = eff.get("rate_limit")
        && let Some(c) = rep.typed::<RateLimitConfig>("rate_limit", m)
    {
        out.rate_limit = c.build().map_err(|e| rep.config("rate_limit", m, &e)).ok();
    }
    if let Some(m) = eff.get("gate") {
        let flag = m.value.as_str().unwrap_or_default();
        match &cx.flags {
            Some(p) if p.snapshot().get(flag).is_some() => {
                out.gate = Some(FlagGateLayer::new(p.clone(), flag));
            }
            Some(_) => rep.push(
                "gate",
                m,
                "",
                format!("no flag `{flag}` in the flag provider"),
            ),
            None => rep.push(
                "gate",
                m,
                "",
                "a gated route needs a flag provider (`Loader::flags`)".to_owned(),
            ),
        }
    }
    if let Some(m) = eff.get("cache")
        && let Some(c) = rep.typed::<CacheConfig>("cache", m)
    {
        out.cache = c.build().map_err(|e| rep.config("cache", m, &e)).ok();
    }
    if let Some(m) = eff.get("timeout")
        && let Some(mut c) = rep.typed::<TimeoutConfig>("timeout", m)
    {
        // Only what is needed runs: nothing in a server stack reads the `Deadline`
        // extension (retry and outbound clients do), so it is inserted only on opt-in.
        if !m.origins.contains_key("insert_deadline") {
            c.insert_deadline = false;
        }
        out.timeout = c.build().map_err(|e| rep.config("timeout", m, &e)).ok();
    }
    if let Some(m) = eff.get("idempotency")
        && let Some(c) = rep.typed::<IdempotencyConfig>("idempotency", m)
    {
        out.idempotency = c
            .build(MemoryStore::new())
            .map_err(|e| rep.config("idempotency", m, &e))
            .ok();
    }
    if let Some(m) = eff.get("breaker")
        && let Some(c) = rep.typed::<BreakerConfig>("breaker", m)
    {
        out.breaker = CircuitBreakerLayer::try_from(c)
            .map_err(|e| rep.config("breaker", m, &e))
            .ok();
    }
    if let Some(m) = eff.get("bulkhead")
        && let Some(c) = rep.typed::<BulkheadConfig>("bulkhead", m)
    {
        out.bulkhead = c.build().map_err(|e| rep.config("bulkhead", m, &e)).ok();
    }
    out.fault = fault(eff, rep);
    (rep.problems.len() == before).then_some(out)
}

fn fault(eff: &Effective, rep: &mut Reporter<'_>) -> Option<FaultLayer> {
    let m = eff.get("fault")?;
    let c = rep.typed::<FaultConfig>("fault", m)?;
    c.build().map_err(|e| rep.config("fault", m, &e)).ok()
}

/// The built layers of one client policy, in the client order (see [`crate::client`]).
/// Clones share state, so keeping this `Arc` across a reload keeps the breaker's window,
/// the retry budget and the bulkhead's slots.
#[derive(Debug, Default)]
pub(crate) struct ClientLayers {
    pub(crate) timeout: Option<TimeoutLayer>,
    pub(crate) retry: Option<RetryLayer>,
    pub(crate) breaker: Option<CircuitBreakerLayer>,
    pub(crate) attempt_timeout: Option<TimeoutLayer>,
    pub(crate) bulkhead: Option<BulkheadLayer>,
    pub(crate) fault: Option<FaultLayer>,
}

/// Builds a client's layers; problems go to `rep`.
pub(crate) fn client(eff: &Effective, rep: &mut Reporter<'_>) -> Option<ClientLayers> {
    let before = rep.problems.len();
    let mut out = ClientLayers::default();
    // The total timeout keeps inserting the `Deadline` (retry and the attempt timeout read
    // it); the attempt timeout writes `grpc-timeout` unless `outbound = false` is written.
    if let Some(m) = eff.get("timeout")
        && let Some(c) = rep.typed::<TimeoutConfig>("timeout", m)
    {
        out.timeout = c.build().map_err(|e| rep.config("timeout", m, &e)).ok();
    }
    if let Some(m) = eff.get("retry")
        && let Some(c) = rep.typed::<RetryConfig>("retry", m)
    {
        out.retry = c.build().map_err(|e| rep.config("retry", m, &e)).ok();
    }
    if let Some(m) = eff.get("breaker")
        && let Some(c) = rep.typed::<BreakerConfig>("breaker", m)
    {
        out.breaker = CircuitBreakerLayer::try_from(c)
            .map_err(|e| rep.config("breaker", m, &e))
            .ok();
    }
    if let Some(m) = eff.get("attempt_timeout")
        && let Some(mut c) = rep.typed::<TimeoutConfig>("attempt_timeout", m)
    {
        if !m.origins.contains_key("outbound") {
            c.outbound = true;
        }
        out.attempt_timeout = c
            .build()
            .map_err(|e| rep.config("attempt_timeout", m, &e))
            .ok();
    }
    if let Some(m) = eff.get("bulkhead")
        && let Some(c) = rep.typed::<BulkheadConfig>("bulkhead", m)
    {
        out.bulkhead = c.build().map_err(|e| rep.config("bulkhead", m, &e)).ok();
    }
    out.fault = fault(eff, rep);
    (rep.problems.len() == before).then_some(out)
}

/// Reads a value with serde, for lints (already validated, so failures are ignored).
pub(crate) fn peek<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}
