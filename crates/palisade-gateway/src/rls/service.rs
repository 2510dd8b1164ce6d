//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over Palisade's Redis GCRA.
//!
//! Per request: the request is checked (a malformed one is `INVALID_ARGUMENT`, naming the
//! field), each descriptor is looked up in its domain's tree, and every limited descriptor
//! is decided by one `EVALSHA` of [`RedisBackend::check_hits`], all of them concurrently on
//! one multiplexed connection. A descriptor spends `hits_addend` units (its own, else the
//! request's; 0 means 1). The Redis key of a descriptor is
//! `<prefix>rls:{<domain>:<key>:<value>:…}:<policy name>` (core's escaped storage-key
//! segments), so every value of a key-only descriptor has its own bucket.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use futures_util::future::join_all;
use palisade_core::storage_key::{StorageKey, push_segment};
use palisade_ratelimit::RateLimitDecision;
use palisade_ratelimit::redis::RedisBackend;
use tonic::{Request, Response, Status};

use super::config::{self, Domains, Unit};
use super::descriptors::Limit;
use super::headers;

/// Most descriptors in one request.
pub(crate) const MAX_REQUEST_DESCRIPTORS: usize = 64;
/// Most entries in one descriptor.
pub(crate) const MAX_ENTRIES: usize = 32;
/// Longest key or value of a request entry (bytes).
pub(crate) const MAX_ENTRY_TEXT: usize = 1024;

/// What a descriptor gets when Redis fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// The call fails with `UNAVAILABLE`: Envoy's `failure_mode_deny` decides (default).
    Error,
    /// The descriptor is OK.
    Allow,
    /// The descriptor is over its limit.
    Deny,
}

impl OnFailure {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "error" => Some(Self::Error),
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// The rate-limit service: the checked configuration and the Redis backend.
#[derive(Debug, Clone)]
pub(crate) struct Rls {
    /// Swapped whole on reload (SIGHUP); a request reads one version throughout.
    domains: Arc<ArcSwap<Domains>>,
    backend: RedisBackend,
    on_failure: OnFailure,
}

/// A descriptor's storage key: the domain, then each entry's key and value.
struct DescriptorKey<'a> {
    domain: &'a str,
    entries: &'a [Entry],
}

impl StorageKey for DescriptorKey<'_> {
    fn write_storage_key(&self, out: &mut String) {
        push_segment(out, self.domain);
        for e in self.entries {
            out.push(':');
            push_segment(out, &e.key);
            out.push(':');
            push_segment(out, &e.value);
        }
    }
}

/// What one descriptor came to.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The limit that applied (`None`: no limit or unlimited).
    pub(crate) limit: Option<Applied>,
    pub(crate) status: DescriptorStatus,
}

/// The limit that applied to a descriptor, for the headers.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) name: Arc<str>,
    pub(crate) requests_per_unit: u32,
    pub(crate) unit: Unit,
    pub(crate) shadow: bool,
    /// Refused (shadow or not).
    pub(crate) over: bool,
    pub(crate) remaining: u32,
    pub(crate) reset: Duration,
}

fn invalid(field: &str, problem: &str) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

fn proto_duration(d: Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// Checks a request's shape; the first problem, naming its field.
fn check_request(req: &RateLimitRequest) -> Result<(), Status> {
    if req.domain.is_empty() {
        return Err(invalid("domain", "must not be empty"));
    }
    if req.domain.len() > MAX_ENTRY_TEXT {
        return Err(invalid("domain", "is longer than 1024 bytes"));
    }
    if req.descriptors.is_empty() {
        return Err(invalid("descriptors", "must not be empty"));
    }
    if req.descriptors.len() > MAX_REQUEST_DESCRIPTORS {
        return Err(invalid(
            "descriptors",
            &format!("at most {MAX_REQUEST_DESCRIPTORS} per request"),
        ));
    }
    for (i, d) in req.descriptors.iter().enumerate() {
        if d.entries.is_empty() {
            return Err(invalid(
                &format!("descriptors[{i}].entries"),
                "must not be empty",
            ));
        }
        if d.entries.len() > MAX_ENTRIES {
            return Err(invalid(
                &format!("descriptors[{i}].entries"),
                &format!("at most {MAX_ENTRIES} per descriptor"),
            ));
        }
        for (j, e) in d.entries.iter().enumerate() {
            if e.key.is_empty() {
                return Err(invalid(
                    &format!("descriptors[{i}].entries[{j}].key"),
                    "must not be empty",
                ));
            }
            if e.key.len() > MAX_ENTRY_TEXT || e.value.len() > MAX_ENTRY_TEXT {
                return Err(invalid(
                    &format!("descriptors[{i}].entries[{j}]"),
                    "key and value must be at most 1024 bytes each",
                ));
            }
        }
        if d.is_negative_hits {
            return Err(invalid(
                &format!("descriptors[{i}].is_negative_hits"),
                "is not supported",
            ));
        }
        if let Some(h) = &d.hits_addend
            && h.value > u64::from(u32::MAX)
        {
            return Err(invalid(
                &format!("descriptors[{i}].hits_addend"),
                "must be at most 4294967295",
            ));
        }
    }
    Ok(())
}

/// The limit a descriptor's `limit` override asks for.
fn override_limit(i: usize, d: &RateLimitDescriptor) -> Result<Option<Limit>, Status> {
    let Some(o) = &d.limit else {
        return Ok(None);
    };
    let unit = Unit::from_proto(o.unit)
        .map_err(|e| invalid(&format!("descriptors[{i}].limit.unit"), &e))?;
    let name = format!("override-{}-per-{}", o.requests_per_unit, unit.name());
    config::limit(&name, o.requests_per_unit, unit, false)
        .map(Some)
        .map_err(|e| invalid(&format!("descriptors[{i}].limit"), e.problem()))
}

impl Rls {
    /// A service over `domains`, deciding on `backend` (its prefix and timeout as given;
    /// its layer name is set to `rls`).
    pub(crate) fn new(domains: Domains, backend: RedisBackend, on_failure: OnFailure) -> Self {
        Self {
            domains: Arc::new(ArcSwap::from_pointee(domains)),
            backend: backend.layer_name("rls"),
            on_failure,
        }
    }

    /// Replaces the configuration; requests in flight finish with the old one.
    pub(crate) fn reload(&self, domains: Domains) {
        self.domains.store(Arc::new(domains));
    }

    /// Decides one request.
    pub(crate) async fn decide(&self, req: &RateLimitRequest) -> Result<RateLimitResponse, Status> {
        check_request(req)?;
        let request_hits = req.hits_addend.max(1);
        let domains = self.domains.load();
        let root = domains.domains.get(&req.domain);
        let mut limits: Vec<Option<Limit>> = Vec::with_capacity(req.descriptors.len());
        for (i, d) in req.descriptors.iter().enumerate() {
            let limit = match root {
                // An unknown domain limits nothing (as the reference service).
                None => None,
                Some(root) => match override_limit(i, d)? {
                    Some(l) => Some(l),
                    None => root.find(&d.entries).cloned(),
                },
            };
            limits.push(limit);
        }
        let checks = req.descriptors.iter().zip(&limits).map(|(d, limit)| {
            let hits = d
                .hits_addend
                .as_ref()
                .map_or(request_hits, |h| h.value as u32)
                .max(1);
            let key = DescriptorKey {
                domain: &req.domain,
                entries: &d.entries,
            };
            async move {
                match limit {
                    Some(Limit::Limited { quota: Some(q), .. }) => {
                        Some(self.backend.check_hits(&key, q, hits).await)
                    }
                    _ => None,
                }
            }
        });
        let decisions = join_all(checks).await;
        let mut outcomes = Vec::with_capacity(limits.len());
        for (limit, decision) in limits.into_iter().zip(decisions) {
            outcomes.push(self.outcome(limit, decision)?);
        }
        Ok(response(&outcomes))
    }

    fn outcome(
        &self,
        limit: Option<Limit>,
        decision: Option<Result<RateLimitDecision, palisade_core::BoxError>>,
    ) -> Result<Outcome, Status> {
        let Some(Limit::Limited {
            name,
            requests_per_unit,
            unit,
            shadow,
            ..
        }) = limit
        else {
            let remaining = if matches!(limit, Some(Limit::Unlimited)) {
                u32::MAX
            } else {
                0
            };
            return Ok(Outcome {
                limit: None,
                status: DescriptorStatus {
                    code: Code::Ok as i32,
                    limit_remaining: remaining,
                    ..DescriptorStatus::default()
                },
            });
        };
        let (over, remaining, reset) = match decision {
            // requests_per_unit 0: every request is over.
            None => (true, 0, unit.window()),
            Some(Ok(d)) => {
                let s = d.states()[0];
                let remaining = u32::try_from(s.remaining).unwrap_or(u32::MAX);
                if d.is_allowed() {
                    (false, remaining, s.reset)
                } else {
                    (
                        true,
                        remaining,
                        s.wait.min(unit.window()).max(Duration::from_millis(1)),
                    )
                }
            }
            Some(Err(e)) => {
                tracing::warn!(target: "palisade_rls", error = %e, policy = %name, "redis decision failed");
                match self.on_failure {
                    OnFailure::Error => {
                        return Err(Status::unavailable(format!("rate limit store failed: {e}")));
                    }
                    OnFailure::Allow => (false, requests_per_unit, Duration::ZERO),
                    OnFailure::Deny => (true, 0, Duration::from_secs(1)),
                }
            }
        };
        let code = if over && !shadow {
            Code::OverLimit
        } else {
            Code::Ok
        };
        let status = DescriptorStatus {
            code: code as i32,
            current_limit: Some(RateLimit {
                name: name.to_string(),
                requests_per_unit,
                unit: unit.proto(),
            }),
            limit_remaining: remaining,
            duration_until_reset: Some(proto_duration(reset)),
            quota: None,
        };
        Ok(Outcome {
            limit: Some(Applied {
                name,
                requests_per_unit,
                unit,
                shadow,
                over,
                remaining,
                reset,
            }),
            status,
        })
    }
}

/// The response for the descriptors' outcomes, in request order.
pub(crate) fn response(outcomes: &[Outcome]) -> RateLimitResponse {
    let over = outcomes
        .iter()
        .any(|o| o.status.code == Code::OverLimit as i32);
    let applied: Vec<&Applied> = outcomes.iter().filter_map(|o| o.limit.as_ref()).collect();
    RateLimitResponse {
        overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
        statuses: outcomes.iter().map(|o| o.status.clone()).collect(),
        response_headers_to_add: headers::response_headers(&applied, over)
            .into_iter()
            .map(|(key, value)| HeaderValue {
                key: key.into(),
                value,
                ..HeaderValue::default()
            })
            .collect(),
        ..RateLimitResponse::default()
    }
}

#[tonic::async_trait]
impl RateLimitService for Rls {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.decide(request.get_ref()).await.map(Response::new)
    }
}
