//! Routing decisions: rules, weights and the sticky bucket mapping.
//!
//! Weights are normalised to [`BUCKETS`] (10,000) buckets, i.e. 0.01 % resolution. Arm `i`
//! owns the bucket range `[bound(i-1), bound(i))` where `bound` is the cumulative weight
//! scaled to 10,000. A sticky key lands in bucket `xxh64(key, seed 0) % 10_000`.
//!
//! **Monotonicity.** With arms in order (stable first, canary last), growing the canary's
//! weight only lowers the boundary between them, so a key that is on the canary stays on
//! the canary; only keys of the shrinking arm move.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use http::Method;

/// Number of weight buckets (0.01 % resolution).
pub const BUCKETS: u32 = 10_000;

/// The stable bucket of a key: `xxh64` (seed 0) of the key's [`Hash`] byte stream, modulo
/// [`BUCKETS`].
///
/// The byte stream is what `Hash` feeds the hasher (for `str`: its bytes then `0xff`), so the
/// bucket is stable across processes and releases on the same platform (integers hash in
/// native byte order).
pub fn bucket_of<K: Hash + ?Sized>(key: &K) -> u32 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    key.hash(&mut h);
    (h.finish() % u64::from(BUCKETS)) as u32
}

/// The arm chosen for a request, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Index of the arm (builder order).
    pub arm: usize,
    /// How it was chosen.
    pub reason: RouteReason,
}

/// How a request was routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// The override header or cookie named the arm.
    Override,
    /// A match rule (path prefix or method set) chose the arm.
    Rule,
    /// Weighted, sticky on the request's key.
    Sticky,
    /// Weighted, random (no key extractor, or the key could not be extracted).
    Random,
}

impl RouteReason {
    /// Short lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::Rule => "rule",
            Self::Sticky => "sticky",
            Self::Random => "random",
        }
    }
}

/// What a [`Rule`] matches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Match {
    /// The request path starts with this prefix, at a segment boundary (`/orders` matches
    /// `/orders` and `/orders/1` but not `/ordersx`). Strangler fig: move routes one by one.
    PathPrefix(Cow<'static, str>),
    /// The request method is one of these. CQRS: reads to the replica, writes to the primary.
    Methods(Vec<Method>),
}

impl Match {
    pub(crate) fn matches(&self, method: &Method, path: &str) -> bool {
        match self {
            Self::PathPrefix(prefix) => path_has_prefix(path, prefix),
            Self::Methods(methods) => methods.iter().any(|m| m == method),
        }
    }
}

fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() || prefix == "/" {
        return true;
    }
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A match rule: requests matching [`Match`] go to the named arm. Rules are checked in
/// order, after the override and before the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub(crate) matcher: Match,
    pub(crate) arm: Cow<'static, str>,
}

impl Rule {
    /// Requests whose path starts with `prefix` (segment-wise) go to `arm`.
    pub fn path_prefix(
        prefix: impl Into<Cow<'static, str>>,
        arm: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            matcher: Match::PathPrefix(prefix.into()),
            arm: arm.into(),
        }
    }

    /// Requests with one of `methods` go to `arm`.
    pub fn methods(
        methods: impl IntoIterator<Item = Method>,
        arm: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            matcher: Match::Methods(methods.into_iter().collect()),
            arm: arm.into(),
        }
    }

    /// Reads (`GET`, `HEAD`, `OPTIONS`) go to `arm` (CQRS read replica).
    pub fn reads(arm: impl Into<Cow<'static, str>>) -> Self {
        Self::methods([Method::GET, Method::HEAD, Method::OPTIONS], arm)
    }

    /// What the rule matches.
    pub fn matcher(&self) -> &Match {
        &self.matcher
    }

    /// The arm the rule routes to.
    pub fn arm(&self) -> &str {
        &self.arm
    }
}

/// A compiled rule (arm resolved to an index).
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) matcher: Match,
    pub(crate) arm: usize,
}

/// The routing snapshot, swapped atomically by the handle.
#[derive(Debug, Clone)]
pub(crate) struct Routing {
    /// Relative weights, as set.
    pub(crate) weights: Vec<u32>,
    /// Cumulative upper bounds in `0..=BUCKETS`, one per arm.
    pub(crate) bounds: Vec<u32>,
    pub(crate) drained: Vec<bool>,
    pub(crate) rules: Vec<CompiledRule>,
}

impl Routing {
    /// Builds a snapshot; `weights` must have at least one non-zero entry on a non-drained arm.
    pub(crate) fn new(weights: Vec<u32>, drained: Vec<bool>, rules: Vec<CompiledRule>) -> Self {
        let effective: Vec<u64> = weights
            .iter()
            .zip(&drained)
            .map(|(&w, &d)| if d { 0 } else { u64::from(w) })
            .collect();
        let total: u64 = effective.iter().sum::<u64>().max(1);
        let mut cum = 0u64;
        let bounds = effective
            .iter()
            .map(|w| {
                cum += w;
                (cum * u64::from(BUCKETS) / total) as u32
            })
            .collect();
        Self {
            weights,
            bounds,
            drained,
            rules,
        }
    }

    /// The arm owning `bucket` (`bucket < BUCKETS`).
    #[inline]
    pub(crate) fn arm_for_bucket(&self, bucket: u32) -> usize {
        self.bounds
            .iter()
            .position(|&b| bucket < b)
            .unwrap_or(self.bounds.len() - 1)
    }

    /// Percent of traffic (0.0..=100.0) arm `i` gets from the weights.
    pub(crate) fn share(&self, i: usize) -> f64 {
        let lo = if i == 0 { 0 } else { self.bounds[i - 1] };
        f64::from(self.bounds[i] - lo) / f64::from(BUCKETS) * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix_is_segment_wise() {
        assert!(path_has_prefix("/orders", "/orders"));
        assert!(path_has_prefix("/orders/1", "/orders"));
        assert!(path_has_prefix("/orders/1", "/orders/"));
        assert!(!path_has_prefix("/ordersx", "/orders"));
        assert!(!path_has_prefix("/users", "/orders"));
        assert!(path_has_prefix("/anything", "/"));
    }

    #[test]
    fn bounds_and_drain() {
        let r = Routing::new(vec![95, 5], vec![false, false], vec![]);
        assert_eq!(r.bounds, vec![9500, 10_000]);
        assert_eq!(r.arm_for_bucket(9499), 0);
        assert_eq!(r.arm_for_bucket(9500), 1);
        let r = Routing::new(vec![50, 50], vec![false, true], vec![]);
        assert_eq!(r.bounds, vec![10_000, 10_000]);
        assert_eq!(r.arm_for_bucket(9999), 0);
    }

    #[test]
    fn bucket_is_stable() {
        // Pinned so an accidental hash change (which would reshuffle every user) fails CI.
        assert_eq!(bucket_of("user-42"), bucket_of("user-42"));
        assert_eq!(bucket_of(&7u8), bucket_of(&7u8));
        let spread: std::collections::HashSet<u32> = (0..1000).map(|i| bucket_of(&i)).collect();
        assert!(spread.len() > 900, "{}", spread.len());
    }

    proptest! {
        // Growing the last arm's weight never moves a bucket away from it.
        #[test]
        fn canary_growth_is_monotone(w0 in 0u32..1000, c1 in 1u32..1000, extra in 0u32..1000, b in 0u32..BUCKETS) {
            let before = Routing::new(vec![w0, c1], vec![false, false], vec![]);
            let after = Routing::new(vec![w0, c1 + extra], vec![false, false], vec![]);
            if before.arm_for_bucket(b) == 1 {
                prop_assert_eq!(after.arm_for_bucket(b), 1);
            }
        }

        // Shrinking the first arm's weight also never moves a canary bucket back.
        #[test]
        fn stable_shrink_is_monotone(w0 in 1u32..1000, cut in 0u32..1000, c1 in 0u32..1000, b in 0u32..BUCKETS) {
            let before = Routing::new(vec![w0, c1], vec![false, false], vec![]);
            let after = Routing::new(vec![w0.saturating_sub(cut), c1.max(1)], vec![false, false], vec![]);
            if before.arm_for_bucket(b) == 1 {
                prop_assert_eq!(after.arm_for_bucket(b), 1);
            }
        }

        #[test]
        fn shares_sum_to_100(ws in proptest::collection::vec(0u32..500, 1..6)) {
            let mut ws = ws;
            ws[0] += 1;
            let n = ws.len();
            let r = Routing::new(ws, vec![false; n], vec![]);
            let total: f64 = (0..n).map(|i| r.share(i)).sum();
            prop_assert!((total - 100.0).abs() < 1e-9);
            prop_assert_eq!(*r.bounds.last().unwrap(), BUCKETS);
        }
    }
}
