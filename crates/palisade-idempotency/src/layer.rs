//! [`IdempotencyLayer`] and its settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, header};
use palisade_core::Listeners;
use palisade_core::key::GlobalKey;
use tower_layer::Layer;

use crate::config::MAX_TTL;
use crate::events::IdempotencyEvent;
use crate::key::{DEFAULT_MAX_KEY_LEN, KeyMode};
use crate::scope::CredentialScope;
use crate::service::{Idempotency, Shared};

/// Default time a completed response is kept (24 h, as Stripe).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default lease of the in-flight lock (how long a crashed instance blocks the key).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Default largest request body buffered for the fingerprint (1 MiB).
pub const DEFAULT_MAX_REQUEST_BODY: usize = 1024 * 1024;
/// Default largest response body stored for replay (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 1024 * 1024;
/// Default `Retry-After` sent with [`StoreUnavailable`](palisade_core::StoreUnavailable).
pub const DEFAULT_STORE_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest `Retry-After` for [`StoreUnavailable`](palisade_core::StoreUnavailable) (1 h).
pub const MAX_STORE_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Largest request or response body the layer buffers (1 GiB).
pub const MAX_BODY: usize = 1 << 30;
/// Longest accepted key setting (4096 characters).
pub const MAX_KEY_LEN: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) methods: Vec<Method>,
    pub(crate) require_key: bool,
    pub(crate) mode: KeyMode,
    pub(crate) max_key_len: usize,
    pub(crate) ttl: Duration,
    pub(crate) lease: Duration,
    pub(crate) max_request_body: usize,
    pub(crate) max_response_body: usize,
    pub(crate) store_server_errors: bool,
    pub(crate) wait_in_flight: Option<Duration>,
    pub(crate) stored_headers: Vec<HeaderName>,
    pub(crate) fingerprint_headers: Vec<HeaderName>,
    pub(crate) store_retry_after: Duration,
    pub(crate) renew_lease: bool,
    pub(crate) max_execution_time: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            methods: vec![Method::POST, Method::PATCH],
            require_key: false,
            mode: KeyMode::Structured,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            store_server_errors: true,
            wait_in_flight: None,
            stored_headers: vec![
                header::CONTENT_TYPE,
                header::CONTENT_LANGUAGE,
                header::CONTENT_ENCODING,
                header::LOCATION,
                header::ETAG,
                header::LAST_MODIFIED,
                header::CACHE_CONTROL,
            ],
            fingerprint_headers: Vec::new(),
            store_retry_after: DEFAULT_STORE_RETRY_AFTER,
            renew_lease: true,
            max_execution_time: None,
        }
    }
}

/// Applies [`Idempotency`] to a service: `Idempotency-Key` handling with a [`Store`](crate::Store).
///
/// Defaults: POST and PATCH; key optional (requests without one pass through); keys parsed as
/// a structured-field string or token ([`KeyMode::Structured`]), up to 255 characters;
/// keys scoped by the caller's credentials ([`CredentialScope`]: `Authorization` plus
/// `x-api-key`; opt out with [`global_scope`](Self::global_scope)); responses kept 24 h; 60 s
/// lease, renewed while the handler runs; request and response bodies buffered up to 1 MiB;
/// 5xx from the handler stored; 409 while in flight (no waiting); no execution time limit;
/// stored headers `content-type`, `content-language`, `content-encoding`, `location`, `etag`,
/// `last-modified`, `cache-control`.
///
/// Setters clamp out-of-range values into their documented range (zero durations and sizes
/// become 1 ms / 1 byte; `ttl` at most [`MAX_TTL`], `lease`, `wait_in_flight` and
/// `max_execution_time` at most the TTL, bodies at most [`MAX_BODY`], keys at most
/// [`MAX_KEY_LEN`], `store_retry_after` at most [`MAX_STORE_RETRY_AFTER`]);
/// [`IdempotencyConfig`](crate::IdempotencyConfig) validates instead and names the bad field.
pub struct IdempotencyLayer<St, K = CredentialScope> {
    pub(crate) settings: Settings,
    pub(crate) store: St,
    pub(crate) scope: K,
    pub(crate) listeners: Listeners<IdempotencyEvent>,
}

impl<St: Clone, K: Clone> Clone for IdempotencyLayer<St, K> {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            store: self.store.clone(),
            scope: self.scope.clone(),
            listeners: self.listeners.clone(),
        }
    }
}

impl<St: fmt::Debug, K: fmt::Debug> fmt::Debug for IdempotencyLayer<St, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("settings", &self.settings)
            .field("store", &self.store)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<St> IdempotencyLayer<St, CredentialScope> {
    /// A layer with default settings over `store`, keys scoped by the caller's credentials
    /// ([`CredentialScope`]; see [`scope`](crate::scope)).
    pub fn new(store: St) -> Self {
        Self {
            settings: Settings::default(),
            store,
            scope: CredentialScope::new(),
            listeners: Listeners::new().named("idempotency"),
        }
    }
}

impl<St, K> IdempotencyLayer<St, K> {
    /// Scopes keys by `extractor` (tenant, principal, API key): the stored key is the
    /// extracted scope plus the client's key (IETF draft §5: a composite key), and the scope
    /// is part of the fingerprint. An extraction error rejects the request with
    /// [`KeyError`](palisade_core::KeyError) (400) before the store is touched. The key type
    /// must implement [`ScopeKey`](crate::scope::ScopeKey) (strings, IPs, integers, pairs and
    /// palisade-core's configured keys do).
    #[must_use]
    pub fn scope<K2>(self, extractor: K2) -> IdempotencyLayer<St, K2> {
        IdempotencyLayer {
            settings: self.settings,
            store: self.store,
            scope: extractor,
            listeners: self.listeners,
        }
    }
    /// Shares keys between all callers: two clients sending the same `Idempotency-Key` get one
    /// record, and the second receives the first one's response. Only for single-tenant
    /// services or keys that are unguessable per caller; it must be asked for explicitly.
    #[must_use]
    pub fn global_scope(self) -> IdempotencyLayer<St, GlobalKey> {
        self.scope(GlobalKey)
    }
    /// The methods the layer applies to (default POST, PATCH); others pass through.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.settings.methods = methods.into_iter().collect();
        self
    }
    /// Whether a request without a key is refused with
    /// [`IdempotencyKeyMissing`](palisade_core::IdempotencyKeyMissing) (400) rather than passed through.
    #[must_use]
    pub fn require_key(mut self, required: bool) -> Self {
        self.settings.require_key = required;
        self
    }
    /// Strict mode: only an sf-string (`"k1"`) is accepted; a token is 400. `false` restores
    /// the default, [`KeyMode::Structured`].
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.settings.mode = if strict {
            KeyMode::Strict
        } else {
            KeyMode::Structured
        };
        self
    }
    /// How the `Idempotency-Key` value is parsed (default [`KeyMode::Structured`];
    /// [`KeyMode::Lenient`] for Stripe-style opaque keys).
    #[must_use]
    pub fn key_mode(mut self, mode: KeyMode) -> Self {
        self.settings.mode = mode;
        self
    }
    /// Longest accepted key in characters (default 255).
    #[must_use]
    pub fn max_key_len(mut self, len: usize) -> Self {
        self.settings.max_key_len = len.clamp(1, MAX_KEY_LEN);
        self
    }
    /// How long a completed response is replayed (default 24 h); after that the key is new.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl.clamp(Duration::from_millis(1), MAX_TTL);
        self
    }
    /// How long the in-flight lock lasts if its holder never finishes (default 60 s; at most
    /// the TTL, checked when the layer is applied).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = lease.clamp(Duration::from_millis(1), MAX_TTL);
        self
    }
    /// Longest the handler may run (call plus response body) before it is abandoned: the key
    /// is then released (as for a handler error) and the caller gets
    /// [`Elapsed`](palisade_core::Elapsed) (504). Default: no limit (the handler runs to
    /// completion, detached from the caller, with its lease renewed). At most the TTL.
    #[must_use]
    pub fn max_execution_time(mut self, max: Duration) -> Self {
        self.settings.max_execution_time = Some(max.clamp(Duration::from_millis(1), MAX_TTL));
        self
    }
    /// Largest request body buffered for the fingerprint; larger requests are refused with
    /// [`RequestBodyTooLarge`](crate::error::RequestBodyTooLarge) (413) without running the handler.
    #[must_use]
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.settings.max_request_body = bytes.clamp(1, MAX_BODY);
        self
    }
    /// Largest response body stored. A larger response is sent to the client unchanged
    /// (streamed) but not stored, and the key is released, so a retry runs the handler again.
    #[must_use]
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.settings.max_response_body = bytes.clamp(1, MAX_BODY);
        self
    }
    /// Whether 5xx responses from the handler are stored and replayed (default true, as
    /// Stripe). With false, a 5xx releases the key and a retry runs the handler again.
    /// Refusals rendered by Palisade layers inside this one (a 429 or 503 carrying
    /// [`RenderedRejection`](palisade_core::rejection::RenderedRejection)) are never stored.
    #[must_use]
    pub fn store_server_errors(mut self, store: bool) -> Self {
        self.settings.store_server_errors = store;
        self
    }
    /// Instead of answering 409 while the original is in flight, wait up to `max` for it
    /// to complete and replay its response (409 if it has not completed by then).
    #[must_use]
    pub fn wait_in_flight(mut self, max: Duration) -> Self {
        self.settings.wait_in_flight = Some(max.clamp(Duration::from_millis(1), MAX_TTL));
        self
    }
    /// Replaces the allowlist of response headers stored and replayed.
    #[must_use]
    pub fn stored_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.settings.stored_headers = names.into_iter().collect();
        self
    }
    /// Request headers included in the fingerprint (default none).
    #[must_use]
    pub fn fingerprint_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.settings.fingerprint_headers = names.into_iter().collect();
        self
    }
    /// Whether the lease is renewed every third of its length while the handler runs
    /// (default true), so handlers slower than the lease are not run twice. Without it,
    /// a handler outliving its lease lets a retry run concurrently (its result then loses the
    /// fencing-token race and is not stored).
    #[must_use]
    pub fn renew_lease(mut self, renew: bool) -> Self {
        self.settings.renew_lease = renew;
        self
    }
    /// `Retry-After` sent when the store is unavailable (default 1 s).
    #[must_use]
    pub fn store_retry_after(mut self, after: Duration) -> Self {
        self.settings.store_retry_after = after.min(MAX_STORE_RETRY_AFTER);
        self
    }
    /// The layer's instance name, carried by its events so metrics label it. Default
    /// `"idempotency"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<palisade_core::InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }
    /// Adds an event listener.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&IdempotencyEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }
}

impl<S, St: Clone, K: Clone> Layer<S> for IdempotencyLayer<St, K> {
    type Service = Idempotency<S, St, K>;

    fn layer(&self, inner: S) -> Self::Service {
        let mut settings = self.settings.clone();
        // Keep the durations consistent whatever order the setters ran in.
        settings.lease = settings.lease.min(settings.ttl);
        settings.wait_in_flight = settings.wait_in_flight.map(|w| w.min(settings.ttl));
        settings.max_execution_time = settings.max_execution_time.map(|m| m.min(settings.ttl));
        Idempotency::from_shared(
            inner,
            Arc::new(Shared {
                settings,
                store: self.store.clone(),
                scope: self.scope.clone(),
                listeners: self.listeners.clone(),
            }),
        )
    }
}
