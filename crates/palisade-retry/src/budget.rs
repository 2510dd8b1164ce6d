//! Retry budgets shared by every clone of a [`Retry`](crate::Retry) service, so retries
//! cannot amplify an outage.
//!
//! - [`TpsBudget`]: Finagle's `RetryBudget` / tower 0.5's `TpsBudget` — each request
//!   deposits, each retry withdraws; retries ≤ `retry_percent` × requests over the last
//!   `ttl` + `min_per_sec` × `ttl`.
//! - [`RetryThrottle`]: gRPC `retryThrottling` (gRFC A6) — a token bucket of `max_tokens`;
//!   a failed attempt costs 1, a success adds `token_ratio`; retries and hedges are allowed
//!   only while tokens > `max_tokens / 2`.
//! - [`KeyedBudget`]: one budget of either kind per upstream host (the request's
//!   authority), in a bounded store: a client talking to many hosts keeps one host's
//!   outage from spending the retries of the others, and memory stays bounded however
//!   many hosts it meets.
//!
//! ```
//! use palisade_retry::budget::{Budget, TpsBudget};
//! use std::time::Duration;
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let budget = TpsBudget::new(Duration::from_secs(1), 5, 1.0);
//! assert!((0..5).all(|_| budget.withdraw())); // the reserve: 5/s
//! assert!(!budget.withdraw());
//! budget.deposit();                            // one request → one more retry
//! assert!(budget.withdraw());
//! # }
//! ```

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicIsize, AtomicU64, Ordering};
use std::time::Duration;

use std::sync::Arc;

use palisade_core::clock::{Clock, nanos};
use palisade_core::keyed::KeyedStore;
use tokio::time::Instant;

/// A retry budget. Implementations are shared (`Arc`) by all clones of the service.
pub trait Budget: fmt::Debug + Send + Sync + 'static {
    /// Called once per request, before its first attempt.
    fn deposit(&self);
    /// Called before each retry or hedge; `false` refuses it.
    fn withdraw(&self) -> bool;
    /// Called after each attempt the predicate classified: `true` for a success, `false`
    /// for a retryable (or pushed-back) failure. Default: nothing.
    fn record(&self, success: bool) {
        // Does nothing: cargo-mutants' "replace with ()" is equivalent (excluded in
        // .cargo/mutants.toml).
        let _ = success;
    }
}

/// Finagle/tower `TpsBudget`: a windowed token bucket over `ttl` split in 10 slots.
///
/// `retry_percent ≤ 1`: a deposit adds 1 and a retry costs `⌊1/pct⌋`; above 1 a deposit adds
/// 1000 and a retry costs `⌊1000/pct⌋`. The reserve is `min_per_sec · ttl_secs · cost`.
/// A retry is allowed iff windowed sum + reserve ≥ cost.
pub struct TpsBudget {
    generation: Mutex<Generation>,
    /// `rotated` is measured on it.
    clock: Clock,
    /// Nanoseconds on `clock` of the last rotation (lock-free fast path of `expire`).
    rotated: AtomicU64,
    reserve: isize,
    slots: Box<[AtomicIsize]>,
    window: Duration,
    window_nanos: u64,
    writer: AtomicIsize,
    deposit_amount: isize,
    withdraw_amount: isize,
}

#[derive(Debug)]
struct Generation {
    index: usize,
    time: Instant,
}

impl fmt::Debug for TpsBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpsBudget")
            .field("reserve", &self.reserve)
            .field("deposit", &self.deposit_amount)
            .field("withdraw", &self.withdraw_amount)
            .field("balance", &self.sum())
            .finish_non_exhaustive()
    }
}

impl Default for TpsBudget {
    /// Finagle's default: 10 s, 10 retries/s, 20 %.
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 10, 0.2)
    }
}

/// Bounds of [`TpsBudget::new`]'s `ttl`.
pub const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// Bounds of [`TpsBudget::new`]'s `retry_percent`.
pub const PERCENT_RANGE: (f32, f32) = (0.0, 1000.0);

impl TpsBudget {
    /// A budget allowing `retry_percent` retries per request over `ttl`, plus `min_per_sec`.
    ///
    /// # Panics
    /// If `ttl` is outside 1–60 s or `retry_percent` outside 0–1000 (the config validates
    /// these first and returns a `ConfigError`).
    pub fn new(ttl: Duration, min_per_sec: u32, retry_percent: f32) -> Self {
        assert!(
            ttl >= TTL_RANGE.0 && ttl <= TTL_RANGE.1,
            "ttl must be 1-60 s"
        );
        assert!(
            (PERCENT_RANGE.0..=PERCENT_RANGE.1).contains(&retry_percent),
            "retry_percent must be 0-1000"
        );
        let (deposit_amount, withdraw_amount) = if retry_percent == 0.0 {
            (0, 1)
        } else if retry_percent <= 1.0 {
            (1, (1.0 / retry_percent) as isize)
        } else {
            (1000, (1000.0 / retry_percent) as isize)
        };
        let reserve = (min_per_sec as isize)
            .saturating_mul(ttl.as_secs() as isize)
            .saturating_mul(withdraw_amount);
        let slots = (0..10).map(|_| AtomicIsize::new(0)).collect();
        let clock = Clock::new();
        Self {
            generation: Mutex::new(Generation {
                index: 0,
                time: clock.epoch(),
            }),
            clock,
            rotated: AtomicU64::new(0),
            reserve,
            slots,
            window: ttl / 10,
            window_nanos: nanos(ttl / 10),
            writer: AtomicIsize::new(0),
            deposit_amount,
            withdraw_amount,
        }
    }

    fn expire(&self) {
        let now = Instant::now();
        let since_base = self.clock.nanos_at(now);
        if since_base.saturating_sub(self.rotated.load(Ordering::Acquire)) < self.window_nanos {
            return; // same window: no lock
        }
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut diff = now.saturating_duration_since(generation.time);
        if diff < self.window {
            return;
        }
        let to_commit = self.writer.swap(0, Ordering::SeqCst);
        self.slots[generation.index].store(to_commit, Ordering::SeqCst);
        let mut idx = (generation.index + 1) % self.slots.len();
        let mut cleared = 0;
        // `cleared` only bounds the work after a long gap: once every slot is cleared,
        // clearing more (`<=` for `<`, or `cleared` never growing) leaves the same all-zero
        // ring, so those two mutants are equivalent (excluded in .cargo/mutants.toml).
        while diff > self.window && cleared < self.slots.len() {
            self.slots[idx].store(0, Ordering::SeqCst);
            diff -= self.window;
            idx = (idx + 1) % self.slots.len();
            cleared += 1;
        }
        generation.index = idx;
        generation.time = now;
        self.rotated.store(since_base, Ordering::Release);
    }

    fn sum(&self) -> isize {
        self.expire();
        let windowed: isize = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .fold(0, isize::saturating_add);
        windowed.saturating_add(self.writer.load(Ordering::SeqCst))
    }

    fn put(&self, amount: isize) {
        self.expire();
        self.writer.fetch_add(amount, Ordering::SeqCst);
    }
}

impl Budget for TpsBudget {
    fn deposit(&self) {
        self.put(self.deposit_amount);
    }

    fn withdraw(&self) -> bool {
        if self.sum().saturating_add(self.reserve) >= self.withdraw_amount {
            self.put(-self.withdraw_amount);
            true
        } else {
            false
        }
    }
}

/// gRPC `retryThrottling` (gRFC A6): tokens in thousandths, starting full.
#[derive(Debug)]
pub struct RetryThrottle {
    milli_tokens: AtomicI64,
    max: i64,
    ratio: i64,
}

/// Bounds of [`RetryThrottle::new`]'s `max_tokens`.
pub const MAX_TOKENS_RANGE: (u32, u32) = (1, 1000);

impl RetryThrottle {
    /// `max_tokens` in 1–1000; `token_ratio` > 0, truncated to 3 decimals.
    ///
    /// # Panics
    /// If either value is out of range (the config validates these first).
    pub fn new(max_tokens: u32, token_ratio: f32) -> Self {
        assert!(
            (MAX_TOKENS_RANGE.0..=MAX_TOKENS_RANGE.1).contains(&max_tokens),
            "max_tokens must be 1-1000"
        );
        assert!(
            token_ratio > 0.0 && token_ratio.is_finite(),
            "token_ratio must be > 0"
        );
        let max = i64::from(max_tokens) * 1000;
        // Truncate to 3 decimals (work in f64 so 0.1f32 does not become 99).
        let ratio = ((f64::from(token_ratio) * 1000.0) + 1e-6).floor() as i64;
        Self {
            milli_tokens: AtomicI64::new(max),
            max,
            ratio,
        }
    }

    /// The current token count.
    pub fn tokens(&self) -> f64 {
        self.milli_tokens.load(Ordering::SeqCst) as f64 / 1000.0
    }

    fn add(&self, delta: i64) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some((t + delta).clamp(0, self.max))
            });
    }
}

impl Budget for RetryThrottle {
    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        self.milli_tokens.load(Ordering::SeqCst) * 2 > self.max
    }

    fn record(&self, success: bool) {
        self.add(if success { self.ratio } else { -1000 });
    }
}

/// Bounds of [`KeyedBudget::new`]'s `max_hosts`.
pub const MAX_HOSTS_RANGE: (usize, usize) = (1, 1_000_000);

/// One retry budget per upstream host, made on first use by a factory and kept in a
/// bounded [`KeyedStore`]: at most `max_hosts` budgets, the least recently used evicted
/// first, a budget unused for `idle` dropped.
///
/// The key is the request's authority (`host[:port]`, from the URI or else the `Host`
/// header: [`RequestParts::authority`](palisade_core::RequestParts::authority)); requests
/// without one share the budget of the empty key. An evicted host starts again from a
/// fresh budget (full reserve): size `max_hosts` above the number of hosts a client
/// really talks to, so that only hosts nobody calls any more are evicted.
///
/// Looking a host up takes one shard lock of the store (no allocation; a new host
/// allocates its key and budget).
///
/// ```
/// use palisade_retry::budget::{KeyedBudget, TpsBudget};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let budgets = KeyedBudget::new(1024, Duration::from_secs(600), || {
///     TpsBudget::new(Duration::from_secs(1), 2, 0.2)
/// });
/// let a = budgets.budget_for("a.example").unwrap();
/// assert!(a.withdraw() && a.withdraw() && !a.withdraw()); // a's reserve is spent...
/// assert!(budgets.budget_for("b.example").unwrap().withdraw()); // ...b's is not
/// assert_eq!(budgets.len(), 2);
/// # }
/// ```
pub struct KeyedBudget {
    store: KeyedStore<String, Arc<dyn Budget>>,
    make: Box<dyn Fn() -> Arc<dyn Budget> + Send + Sync>,
}

impl fmt::Debug for KeyedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBudget")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl KeyedBudget {
    /// At most `max_hosts` budgets (clamped to [`MAX_HOSTS_RANGE`]), each dropped after
    /// `idle` unused, made by `make`.
    pub fn new<B: Budget>(
        max_hosts: usize,
        idle: Duration,
        make: impl Fn() -> B + Send + Sync + 'static,
    ) -> Self {
        Self::from_fn(max_hosts, idle, move || Arc::new(make()) as Arc<dyn Budget>)
    }

    /// As [`new`](Self::new), with a factory of shared budgets (e.g. a kind chosen at run
    /// time).
    pub fn from_fn(
        max_hosts: usize,
        idle: Duration,
        make: impl Fn() -> Arc<dyn Budget> + Send + Sync + 'static,
    ) -> Self {
        let max_hosts = max_hosts.clamp(MAX_HOSTS_RANGE.0, MAX_HOSTS_RANGE.1);
        Self {
            store: KeyedStore::new(max_hosts, idle),
            make: Box::new(make),
        }
    }

    /// The budget of `host`, made if new. `None` only if the store could not make room,
    /// which an unpinned store never fails to do.
    pub fn budget_for(&self, host: &str) -> Option<Arc<dyn Budget>> {
        self.store.get_or_insert_with(host, || (self.make)()).ok()
    }

    /// Hosts with a budget now.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no host has a budget.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The cap on hosts.
    pub fn max_hosts(&self) -> usize {
        self.store.max_keys()
    }

    /// Drops every budget unused for longer than `idle` (the request path drops a few as it
    /// goes; this is for a periodic task).
    pub fn evict_idle(&self) {
        self.store.evict_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test(start_paused = true)]
    async fn keyed_budgets_are_per_host_and_bounded() {
        let budgets = KeyedBudget::new(2, Duration::from_secs(60), || {
            TpsBudget::new(Duration::from_secs(1), 1, 1.0)
        });
        assert!(budgets.budget_for("a").unwrap().withdraw());
        assert!(!budgets.budget_for("a").unwrap().withdraw());
        assert!(budgets.budget_for("b").unwrap().withdraw());
        // A third host evicts the least recently used (a), which starts over.
        assert!(budgets.budget_for("c").unwrap().withdraw());
        assert_eq!(budgets.len(), 2);
        assert!(budgets.budget_for("a").unwrap().withdraw());
        assert_eq!(budgets.max_hosts(), 2);
        tokio::time::advance(Duration::from_secs(61)).await;
        budgets.evict_idle();
        assert!(budgets.is_empty());
        assert_eq!(
            KeyedBudget::new(0, Duration::ZERO, RetryThrottle::default_for_tests).max_hosts(),
            1
        );
    }

    impl RetryThrottle {
        fn default_for_tests() -> Self {
            Self::new(10, 0.1)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tps_reserve() {
        let b = TpsBudget::new(Duration::from_secs(1), 5, 1.0);
        for _ in 0..5 {
            assert!(b.withdraw());
        }
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn tps_deposits_expire() {
        let b = TpsBudget::new(Duration::from_secs(1), 0, 1.0);
        assert!(!b.withdraw());
        b.deposit();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!b.withdraw());
        b.deposit();
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn tps_default_vector() {
        let b = TpsBudget::default();
        for i in 0..100 {
            assert!(b.withdraw(), "reserve withdrawal {i}");
        }
        assert!(!b.withdraw());
        for _ in 0..100 {
            b.deposit();
        }
        for i in 0..20 {
            assert!(b.withdraw(), "deposit withdrawal {i}");
        }
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn tps_percent_above_one() {
        let b = TpsBudget::new(Duration::from_secs(1), 0, 2.0);
        b.deposit();
        assert!(b.withdraw());
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }

    #[test]
    fn throttle_vector() {
        let t = RetryThrottle::new(10, 0.1);
        assert!((t.tokens() - 10.0).abs() < 1e-9);
        for _ in 0..5 {
            t.record(false);
        }
        assert!((t.tokens() - 5.0).abs() < 1e-9);
        assert!(!t.withdraw());
        t.record(true);
        assert!((t.tokens() - 5.1).abs() < 1e-9);
        assert!(t.withdraw());
        for _ in 0..100 {
            t.record(true);
        }
        assert!((t.tokens() - 10.0).abs() < 1e-9);
        for _ in 0..100 {
            t.record(false);
        }
        assert!(t.tokens().abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn throttle_stays_in_range(max in 1u32..=1000, ratio in 0.001f32..5.0, ops in proptest::collection::vec(any::<bool>(), 0..300)) {
            let t = RetryThrottle::new(max, ratio);
            for ok in ops {
                t.record(ok);
                let v = t.tokens();
                prop_assert!((0.0..=f64::from(max)).contains(&v));
                prop_assert_eq!(t.withdraw(), v * 2.0 > f64::from(max));
            }
        }

        #[test]
        fn tps_never_exceeds_budget(min in 0u32..20, pct in 0.05f32..=1.0, requests in 0usize..500) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                let b = TpsBudget::new(Duration::from_secs(10), min, pct);
                let cost = (1.0 / pct) as usize;
                let mut granted = 0usize;
                for _ in 0..requests {
                    b.deposit();
                    while b.withdraw() { granted += 1; }
                }
                while b.withdraw() { granted += 1; }
                let allowed = (requests + min as usize * 10 * cost) / cost;
                prop_assert_eq!(granted, allowed);
                Ok(())
            })?;
        }
    }
}
