//! Quotas: a rate and a burst, and the set of quotas one request must pass.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;
use palisade_core::ConfigError;

use crate::headers;

/// Most quotas one route (or one tier) may have; a request must pass all of them.
pub const MAX_QUOTAS: usize = 4;

/// One quota policy: `limit` units per `window`, refilled continuously (GCRA), with up to
/// `burst` units available at once (default: `limit`).
///
/// With the default burst, `Quota::per_minute("default", 100)` behaves like "100 requests
/// per minute" and is advertised as `RateLimit-Policy: "default";q=100;w=60`. A burst
/// different from the limit is advertised as the vendor parameter `palisade-burst`.
#[derive(Clone, PartialEq, Eq)]
pub struct Quota {
    name: Arc<str>,
    /// `"name";r=` with the name as an sf-string: the start of this quota's `RateLimit`
    /// item, built once so that a response only formats two numbers.
    limit_prefix: Arc<str>,
    limit: u32,
    window: Duration,
    burst: u32,
    emission_ns: u64,
    tolerance_ns: u64,
    shadow: bool,
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("name", &&*self.name)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("burst", &self.burst)
            .field("shadow", &self.shadow)
            .finish_non_exhaustive()
    }
}

/// Longest accepted quota window.
pub const MAX_WINDOW: Duration = Duration::from_secs(86_400 * 31);

impl Quota {
    /// `limit` units per `window`, named `name` (the policy name in the headers: printable
    /// ASCII, 1 to 64 characters). Errors name the field and the allowed range.
    pub fn new(name: &str, limit: u32, window: Duration) -> Result<Self, ConfigError> {
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(ConfigError::new(
                "name",
                format!("must be 1 to 64 printable ASCII characters (got {name:?})"),
            ));
        }
        if limit == 0 {
            return Err(ConfigError::new("limit", "must be at least 1"));
        }
        if window < Duration::from_millis(1) || window > MAX_WINDOW {
            return Err(ConfigError::new(
                "window",
                format!("must be between 1ms and {MAX_WINDOW:?} (got {window:?})"),
            ));
        }
        let emission_ns = ((window.as_nanos() / u128::from(limit)) as u64).max(1);
        let mut limit_prefix = String::with_capacity(name.len() + 6);
        crate::headers::write_sf_string(&mut limit_prefix, name);
        limit_prefix.push_str(";r=");
        Ok(Self {
            name: name.into(),
            limit_prefix: limit_prefix.into(),
            limit,
            window,
            burst: limit,
            emission_ns,
            tolerance_ns: emission_ns.saturating_mul(u64::from(limit)),
            shadow: false,
        })
    }

    /// `limit` units per second.
    pub fn per_second(name: &str, limit: u32) -> Result<Self, ConfigError> {
        Self::new(name, limit, Duration::from_secs(1))
    }

    /// `limit` units per minute.
    pub fn per_minute(name: &str, limit: u32) -> Result<Self, ConfigError> {
        Self::new(name, limit, Duration::from_secs(60))
    }

    /// `limit` units per hour.
    pub fn per_hour(name: &str, limit: u32) -> Result<Self, ConfigError> {
        Self::new(name, limit, Duration::from_secs(3600))
    }

    /// Sets how many units may be spent at once (at least 1; 0 is raised to 1), lowered if
    /// need be so that a full bucket refills within [`MAX_WINDOW`] (`burst × window / limit
    /// ≤ 31 days`). [`try_burst`](Self::try_burst) refuses such a burst instead.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        let max = self.max_burst();
        self.burst = burst.clamp(1, max);
        self.tolerance_ns = self.emission_ns.saturating_mul(u64::from(self.burst));
        self
    }

    /// Like [`burst`](Self::burst), but an error naming `burst` when it is 0 or when a
    /// full bucket would take longer than [`MAX_WINDOW`] to refill: beyond that the GCRA
    /// state would not fit its clock (with limit 1 per 31 days, a burst of 10,000 is
    /// 850 years).
    pub fn try_burst(self, burst: u32) -> Result<Self, ConfigError> {
        let max = self.max_burst();
        if burst == 0 || burst > max {
            return Err(ConfigError::new(
                "burst",
                format!(
                    "must be between 1 and {max} for {} per {:?}, so that a full bucket \
                     refills within 31 days (got {burst})",
                    self.limit, self.window
                ),
            ));
        }
        Ok(self.burst(burst))
    }

    /// The largest burst whose bucket refills within [`MAX_WINDOW`].
    fn max_burst(&self) -> u32 {
        let max = MAX_WINDOW.as_nanos() / u128::from(self.emission_ns);
        u32::try_from(max).unwrap_or(u32::MAX).max(1)
    }

    /// Shadow (dry-run) mode for this quota: it is checked and its verdict recorded
    /// ([`RateLimitDecision::would_limit`](crate::RateLimitDecision::would_limit), a
    /// [`RateLimitEvent::WouldLimit`](crate::RateLimitEvent::WouldLimit) event, the metric
    /// `decision="would_limit"`), but it never refuses nor holds a request: the other
    /// quotas of the set decide. Use it to roll out a new limit safely next to enforced
    /// ones. A shadow quota that would refuse consumes nothing (as a refusal would not), so
    /// its counts follow what it would do if enforced. It still appears in the
    /// `RateLimit-Policy` / `RateLimit` fields. Default `false`.
    #[must_use]
    pub fn shadow(mut self, yes: bool) -> Self {
        self.shadow = yes;
        self
    }

    /// Whether this quota is in [shadow](Self::shadow) mode.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// The policy name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `"name";r=`, the start of this quota's `RateLimit` item.
    pub(crate) fn limit_prefix(&self) -> &str {
        &self.limit_prefix
    }
    /// Units per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }
    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
    /// Units available at once.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// GCRA emission interval (time to earn one unit), in nanoseconds, at least 1.
    #[inline]
    pub(crate) fn emission_ns(&self) -> u64 {
        self.emission_ns
    }

    /// GCRA tolerance (bucket capacity in time), in nanoseconds.
    #[inline]
    pub(crate) fn tolerance_ns(&self) -> u64 {
        self.tolerance_ns
    }
}

/// The quotas one request must all pass (1 to [`MAX_QUOTAS`], distinct names), with its
/// `RateLimit-Policy` header value computed once.
#[derive(Clone, Debug)]
pub struct QuotaSet {
    pub(crate) inner: Arc<QuotaSetInner>,
}

#[derive(Debug)]
pub(crate) struct QuotaSetInner {
    /// Unique per set built in this process (for caches keyed by set).
    pub(crate) id: u64,
    pub(crate) quotas: Vec<Quota>,
    pub(crate) policy_header: HeaderValue,
    pub(crate) names: Vec<String>,
}

static NEXT_SET_ID: AtomicU64 = AtomicU64::new(0);

impl QuotaSet {
    /// Checks the quotas: 1 to [`MAX_QUOTAS`] of them, with distinct names.
    pub fn new(quotas: impl IntoIterator<Item = Quota>) -> Result<Self, ConfigError> {
        let quotas: Vec<Quota> = quotas.into_iter().collect();
        if quotas.is_empty() || quotas.len() > MAX_QUOTAS {
            return Err(ConfigError::new(
                "quotas",
                format!("must hold 1 to {MAX_QUOTAS} quotas (got {})", quotas.len()),
            ));
        }
        for (i, q) in quotas.iter().enumerate() {
            if quotas[..i].iter().any(|p| p.name == q.name) {
                return Err(ConfigError::new(
                    "quotas",
                    format!("policy names must be distinct (`{}` repeats)", q.name),
                ));
            }
        }
        let policy_header = headers::policy_header(&quotas);
        let names = quotas.iter().map(|q| q.name.to_string()).collect();
        Ok(Self {
            inner: Arc::new(QuotaSetInner {
                id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
                quotas,
                policy_header,
                names,
            }),
        })
    }

    /// A number unique to this set (and its clones) in this process.
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The quotas.
    pub fn quotas(&self) -> &[Quota] {
        &self.inner.quotas
    }

    /// The `RateLimit-Policy` value, e.g. `"default";q=100;w=60`.
    pub fn policy_header(&self) -> &HeaderValue {
        &self.inner.policy_header
    }
}

impl From<Quota> for QuotaSet {
    fn from(q: Quota) -> Self {
        Self::new([q]).expect("one quota is always a valid set")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_fields() {
        assert_eq!(
            Quota::new("", 1, Duration::from_secs(1))
                .unwrap_err()
                .field(),
            "name"
        );
        assert_eq!(
            Quota::new("a\n", 1, Duration::from_secs(1))
                .unwrap_err()
                .field(),
            "name"
        );
        assert_eq!(Quota::per_second("a", 0).unwrap_err().field(), "limit");
        assert_eq!(
            Quota::new("a", 1, Duration::ZERO).unwrap_err().field(),
            "window"
        );
        let a = Quota::per_second("a", 1).unwrap();
        assert!(QuotaSet::new([]).is_err());
        assert!(QuotaSet::new([a.clone(), a.clone()]).is_err());
        assert!(QuotaSet::new(vec![a; 5]).is_err());
    }

    #[test]
    fn gcra_parameters() {
        let q = Quota::per_minute("m", 100).unwrap();
        assert_eq!(q.emission_ns(), 600_000_000);
        assert_eq!(q.tolerance_ns(), 60_000_000_000);
        let q = Quota::per_second("s", 10).unwrap().burst(3);
        assert_eq!(q.emission_ns(), 100_000_000);
        assert_eq!(q.tolerance_ns(), 300_000_000);
    }
}
