use std::hash::BuildHasher as _;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use palisade_core::request::{Http, RequestMode, ResponseMode};
use palisade_core::{BoxError, Deadline, KeyExtractor, RateLimited};
use tower_service::Service;

use crate::events::RateLimitEvent;
use crate::future::ResponseFuture;
use crate::gcra::RateLimitDecision;
use crate::headers::{RATELIMIT, RATELIMIT_POLICY, ResponseFields, legacy_headers, limit_value};
use crate::layer::{RateLimitMode, Shared};
use crate::quota::QuotaSet;
#[cfg(feature = "redis")]
use palisade_core::storage_key;
use palisade_core::storage_key::StorageKey;

/// Rate-limits requests per key; see the [crate docs](crate).
///
/// In mode [`Http`] (the default) the request must be HTTP-shaped
/// ([`RequestParts`](palisade_core::RequestParts)) and so must the response
/// ([`ResponseParts`](palisade_core::ResponseParts)); in mode
/// [`AnyRequest`](palisade_core::AnyRequest) (built by
/// [`RateLimitLayer::any_request`](crate::RateLimitLayer::any_request)) both may be of any
/// type.
#[derive(Debug, Clone)]
pub struct RateLimit<S, X, M = Http> {
    inner: S,
    extractor: X,
    shared: Arc<Shared>,
    /// The hash of a zero-sized key (`GlobalKey`), which has one value: hashed once.
    zst_hash: Option<u64>,
    mode: PhantomData<fn() -> M>,
}

impl<S, X, M> RateLimit<S, X, M> {
    pub(crate) fn from_parts(inner: S, extractor: X, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            extractor,
            shared,
            zst_hash: None,
            mode: PhantomData,
        }
    }
    palisade_core::define_inner_service_accessors!();
    /// Keys tracked in memory now.
    pub fn tracked_keys(&self) -> usize {
        self.shared.store.len()
    }
}

/// What to do with a request once decided.
pub(crate) enum Step {
    Call(Option<ResponseFields>),
    Wait(Duration, Option<ResponseFields>),
    Reject(BoxError),
}

fn rate_headers(shared: &Shared, set: &QuotaSet, d: &RateLimitDecision) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(if shared.legacy_headers { 8 } else { 2 });
    h.insert(RATELIMIT_POLICY, set.policy_header().clone());
    h.insert(RATELIMIT, limit_value(set, d));
    if shared.legacy_headers {
        legacy_headers(set.quotas(), d, &mut h);
    }
    h
}

/// The names of the policies of `set` refusing in `d`: the enforced ones with a wait, or
/// the shadow ones that would have refused.
fn policies(set: &QuotaSet, d: &RateLimitDecision, shadow: bool) -> Vec<String> {
    d.states()
        .iter()
        .zip(set.quotas())
        .zip(&set.inner.names)
        .enumerate()
        .filter(|(i, ((s, q), _))| {
            if q.is_shadow() {
                shadow && d.would_limit_quota(*i)
            } else {
                !s.wait.is_zero()
            }
        })
        .map(|(_, (_, n))| n.clone())
        .collect()
}

/// Turns a decision into the next step, emitting its event.
pub(crate) fn step(shared: &Shared, set: &QuotaSet, hash: u64, d: &RateLimitDecision) -> Step {
    if d.is_allowed() || shared.shadow {
        let would_limit = !d.is_allowed() || d.would_limit();
        if would_limit {
            let retry_after = if d.is_allowed() {
                // The longest wait among the shadow quotas that would have refused.
                (0..d.states().len())
                    .filter(|&i| d.would_limit_quota(i))
                    .map(|i| d.state(i).wait)
                    .max()
                    .unwrap_or_default()
            } else {
                d.wait()
            };
            let policies = policies(set, d, true);
            shared
                .listeners
                .emit_named(|instance| RateLimitEvent::WouldLimit {
                    instance,
                    key_hash: hash,
                    retry_after,
                    policies,
                });
        } else {
            shared
                .listeners
                .emit_named(|instance| RateLimitEvent::Allowed {
                    instance,
                    key_hash: hash,
                    waited: d.wait(),
                });
        }
        // Client mode never writes the fields into upstream responses.
        let headers = (shared.response_headers && shared.mode == RateLimitMode::Reject)
            .then(|| ResponseFields::new(set, d, shared.legacy_headers));
        // A layer in shadow mode never holds a request back either.
        if d.wait().is_zero() || shared.shadow {
            Step::Call(headers)
        } else {
            Step::Wait(d.wait(), headers)
        }
    } else {
        let violated = policies(set, d, false);
        shared
            .listeners
            .emit_named(|instance| RateLimitEvent::Limited {
                instance,
                key_hash: hash,
                retry_after: d.wait(),
                violated_policies: violated.clone(),
            });
        Step::Reject(Box::new(RateLimited::new(
            d.wait(),
            rate_headers(shared, set, d),
            violated,
        )))
    }
}

/// The longest this request may wait, `None` in reject mode.
pub(crate) fn max_wait<M: RequestMode<R>, R>(shared: &Shared, req: &R) -> Option<Duration> {
    match shared.mode {
        RateLimitMode::Reject => None,
        RateLimitMode::Wait => {
            let deadline = M::deadline(req).map(Deadline::remaining);
            Some(match (shared.max_wait, deadline) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => Duration::MAX,
            })
        }
    }
}

impl<S, X, Req, M> Service<Req> for RateLimit<S, X, M>
where
    M: RequestMode<Req> + ResponseMode<S::Response>,
    X: KeyExtractor<Req>,
    X::Key: StorageKey,
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, M>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = match self.extractor.extract(&req) {
            Ok(k) => k,
            Err(e) => return ResponseFuture::rejected(Box::new(e)),
        };
        let shared = &*self.shared;
        // A zero-sized key type has a single value, so its hash never changes.
        let hash = if size_of::<X::Key>() == 0 {
            *self
                .zst_hash
                .get_or_insert_with(|| shared.hasher.hash_one(&key))
        } else {
            shared.hasher.hash_one(&key)
        };
        let set = shared.quotas_for(hash);
        let max_wait = max_wait::<M, _>(shared, &req);
        #[cfg(feature = "redis")]
        if let Some(redis) = &shared.redis {
            let fut = redis.decide(&storage_key::encode(&key), set, max_wait);
            let inner = take_ready(&mut self.inner);
            return ResponseFuture::deciding(
                fut,
                crate::future::Remote {
                    shared: self.shared.clone(),
                    set: set.clone(),
                    hash,
                    max_wait,
                    fail: redis.fail_action(),
                },
                inner,
                req,
            );
        }
        let d = shared.store.decide(hash, set.quotas(), max_wait);
        match step(shared, set, hash, &d) {
            Step::Call(headers) => ResponseFuture::called(self.inner.call(req), headers),
            Step::Wait(wait, headers) => {
                let inner = take_ready(&mut self.inner);
                ResponseFuture::waiting(wait, inner, req, headers)
            }
            Step::Reject(e) => ResponseFuture::rejected(e),
        }
    }
}

/// Takes the readied inner service, leaving a clone in its place.
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
