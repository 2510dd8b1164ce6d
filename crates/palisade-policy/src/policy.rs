//! [`Policy`]: one policy's layer sections as the pattern crates' typed configs — what a
//! file's `defaults`, `policies.NAME`, routes, `fallback` and clients are made of, and what
//! [`Policy::builder`] assembles in code.

use palisade_breaker::BreakerConfig;
use palisade_bulkhead::BulkheadConfig;
use palisade_cache::CacheConfig;
use palisade_chaos::FaultConfig;
use palisade_idempotency::IdempotencyConfig;
use palisade_ratelimit::RateLimitConfig;
use palisade_retry::RetryConfig;
use palisade_timeout::TimeoutConfig;
use serde::Serialize;
use serde_json::Value;

use crate::schema::Sections;

/// One section of a policy: its settings, or `false` (`Off`) to remove the layer that a
/// less specific level (the named policy, `defaults`) would give.
#[derive(Debug, Clone)]
pub enum Section<T> {
    /// The layer with these settings (merged field by field over inherited ones).
    On(T),
    /// No such layer here, whatever is inherited (`section = false` in a file).
    Off,
}

#[cfg(feature = "schema")]
impl<T: schemars::JsonSchema> schemars::JsonSchema for Section<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Section_{}", T::schema_name()).into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                g.subschema_for::<T>(),
                { "const": false, "description": "`false` removes the inherited layer" }
            ]
        })
    }
}

/// The layer sections of one policy, each the serde form of its pattern crate's config.
/// Outermost first on a server: `rate_limit`, `gate`, `timeout`, `idempotency`, `breaker`,
/// `bulkhead`; on a client: `timeout`, `retry`, `breaker`, `attempt_timeout`, `bulkhead`.
/// Build one with [`Policy::builder`].
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Policy {
    /// Keyed rate limit with quotas (`palisade-ratelimit`'s `RateLimitConfig`).
    pub(crate) rate_limit: Option<Section<RateLimitConfig>>,
    /// The name of a boolean flag that switches the route on (404 while off).
    pub(crate) gate: Option<Section<String>>,
    /// The total timeout (`palisade-timeout`'s `TimeoutConfig`).
    pub(crate) timeout: Option<Section<TimeoutConfig>>,
    /// Idempotency keys (`palisade-idempotency`'s `IdempotencyConfig`).
    pub(crate) idempotency: Option<Section<IdempotencyConfig>>,
    /// Circuit breaker (`palisade-breaker`'s `BreakerConfig`).
    pub(crate) breaker: Option<Section<BreakerConfig>>,
    /// Concurrency limit (`palisade-bulkhead`'s `BulkheadConfig`).
    pub(crate) bulkhead: Option<Section<BulkheadConfig>>,
    /// Clients only: retry with backoff and a budget (`palisade-retry`'s `RetryConfig`).
    pub(crate) retry: Option<Section<RetryConfig>>,
    /// Clients only: the timeout of each attempt, inside retry (`TimeoutConfig`).
    pub(crate) attempt_timeout: Option<Section<TimeoutConfig>>,
    /// Servers only: a shared HTTP cache in memory (`palisade-cache`'s `CacheConfig`).
    pub(crate) cache: Option<Section<CacheConfig>>,
    /// Fault injection, innermost (`palisade-chaos`'s `FaultConfig`).
    pub(crate) fault: Option<Section<FaultConfig>>,
    /// The named policy this one inherits from (routes and clients only).
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) inherits: Option<String>,
}

impl Policy {
    /// The sections as a file would write them: each config keeps only the fields that
    /// differ from its crate's default (so the rest is inherited field by field, as in a
    /// file), except `insert_deadline`, which is always written as given.
    pub(crate) fn sections(&self) -> Sections {
        let mut out = Sections::new();
        put(&mut out, "rate_limit", self.rate_limit.as_ref());
        if let Some(g) = &self.gate {
            out.insert(
                "gate".into(),
                match g {
                    Section::On(flag) => Value::String(flag.clone()),
                    Section::Off => Value::Bool(false),
                },
            );
        }
        for (name, s) in [
            ("timeout", self.timeout.as_ref()),
            ("attempt_timeout", self.attempt_timeout.as_ref()),
        ] {
            put(&mut out, name, s);
            if let (Some(Section::On(t)), Some(Value::Object(o))) = (s, out.get_mut(name)) {
                o.insert("insert_deadline".into(), Value::Bool(t.insert_deadline));
            }
        }
        put(&mut out, "idempotency", self.idempotency.as_ref());
        put(&mut out, "breaker", self.breaker.as_ref());
        put(&mut out, "bulkhead", self.bulkhead.as_ref());
        put(&mut out, "retry", self.retry.as_ref());
        put(&mut out, "fault", self.fault.as_ref());
        put(&mut out, "cache", self.cache.as_ref());
        out
    }
}

fn put<T: Serialize + Default>(out: &mut Sections, name: &str, s: Option<&Section<T>>) {
    let v = match s {
        None => return,
        Some(Section::Off) => Value::Bool(false),
        Some(Section::On(c)) => minimal(c),
    };
    out.insert(name.to_owned(), v);
}

/// `c` as a value tree without the fields equal to `T::default()`'s.
fn minimal<T: Serialize + Default>(c: &T) -> Value {
    let v = serde_json::to_value(c).unwrap_or(Value::Null);
    let d = serde_json::to_value(T::default()).unwrap_or(Value::Null);
    match (v, d) {
        (Value::Object(mut v), Value::Object(d)) => {
            v.retain(|k, val| d.get(k) != Some(val));
            Value::Object(v)
        }
        (v, _) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sections_keep_only_what_differs_from_the_crate_default() {
        let mut b = BreakerConfig::default();
        b.minimum_calls = 3;
        let p = Policy {
            breaker: Some(Section::On(b)),
            timeout: Some(Section::On(TimeoutConfig::new(Duration::from_secs(2)))),
            bulkhead: Some(Section::Off),
            gate: Some(Section::On("beta".into())),
            ..Policy::default()
        };
        let s = p.sections();
        assert_eq!(s["breaker"], serde_json::json!({ "minimum_calls": 3 }));
        assert_eq!(
            s["timeout"],
            serde_json::json!({ "timeout": "2s", "insert_deadline": true })
        );
        assert_eq!(s["bulkhead"], Value::Bool(false));
        assert_eq!(s["gate"], Value::from("beta"));
        assert!(!s.contains_key("retry"));
    }
}
