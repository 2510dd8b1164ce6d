//! [`FlagsLayer`]: puts a [`Flags`] handle in each request's extensions.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Request};
use palisade_core::cookie::cookie_value as cookie;
use palisade_core::{KeyExtractor, Listeners};
use tower_layer::Layer;
use tower_service::Service;

use crate::context::EvaluationContext;
use crate::events::ToggleEvent;
use crate::flags::Flags;
use crate::provider::Provider;

/// A key usable as a targeting key.
pub trait IntoTargetingKey {
    /// The targeting key, if any.
    fn into_targeting_key(self) -> Option<String>;
}
impl IntoTargetingKey for String {
    fn into_targeting_key(self) -> Option<String> {
        Some(self)
    }
}
impl IntoTargetingKey for () {
    fn into_targeting_key(self) -> Option<String> {
        None
    }
}
impl IntoTargetingKey for IpAddr {
    fn into_targeting_key(self) -> Option<String> {
        Some(self.to_string())
    }
}
impl<T: IntoTargetingKey> IntoTargetingKey for Option<T> {
    fn into_targeting_key(self) -> Option<String> {
        self.and_then(IntoTargetingKey::into_targeting_key)
    }
}

/// Where an attribute of the evaluation context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttrSource {
    /// A request header (its value as a string).
    Header(HeaderName),
    /// A cookie by name.
    Cookie(String),
    /// A query parameter by name (not percent-decoded).
    Query(String),
    /// The request path.
    Path,
    /// The request method.
    Method,
}

/// No targeting key (the default of [`FlagsLayer`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTargetingKey;

impl<R: ?Sized> KeyExtractor<R> for NoTargetingKey {
    type Key = ();
    fn extract(&self, _req: &R) -> Result<(), palisade_core::KeyError> {
        Ok(())
    }
}

/// Builds an [`EvaluationContext`] from each request (targeting key from a core
/// [`KeyExtractor`]; attributes from headers, cookies, query and path) and inserts a
/// [`Flags`] handle into its extensions. A key extraction error leaves the targeting key
/// unset (rules needing it fall back to the default variant).
pub struct FlagsLayer<K = NoTargetingKey> {
    provider: Arc<dyn Provider>,
    key: K,
    attrs: Arc<[(String, AttrSource)]>,
    listeners: Listeners<ToggleEvent>,
}

impl<K: Clone> Clone for FlagsLayer<K> {
    fn clone(&self) -> Self {
        Self {
            provider: self.provider.clone(),
            key: self.key.clone(),
            attrs: self.attrs.clone(),
            listeners: self.listeners.clone(),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for FlagsLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagsLayer")
            .field("key", &self.key)
            .field("attrs", &self.attrs)
            .finish_non_exhaustive()
    }
}

impl FlagsLayer {
    /// Flags from `provider`, with no targeting key and no attributes.
    pub fn new(provider: impl Provider) -> Self {
        Self {
            provider: Arc::new(provider),
            key: NoTargetingKey,
            attrs: Arc::from(Vec::new()),
            listeners: Listeners::new().named("toggle"),
        }
    }
}

impl<K> FlagsLayer<K> {
    /// Takes the targeting key from `key` (e.g. `HeaderKey::new("x-user-id")`).
    #[must_use]
    pub fn targeting_key<K2>(self, key: K2) -> FlagsLayer<K2> {
        FlagsLayer {
            provider: self.provider,
            key,
            attrs: self.attrs,
            listeners: self.listeners,
        }
    }

    /// Adds attribute `name` read from `source`.
    #[must_use]
    pub fn attribute(mut self, name: impl Into<String>, source: AttrSource) -> Self {
        let mut v = self.attrs.to_vec();
        v.push((name.into(), source));
        self.attrs = v.into();
        self
    }

    /// The layer's instance name, carried by its evaluation events. Default `"toggle"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<palisade_core::InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }

    /// Reports every evaluation through the handles (see [`ToggleEvent::Evaluated`]).
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&ToggleEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }
}

impl<S, K: Clone> Layer<S> for FlagsLayer<K> {
    type Service = FlagsService<S, K>;
    fn layer(&self, inner: S) -> Self::Service {
        FlagsService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`FlagsLayer`].
pub struct FlagsService<S, K = NoTargetingKey> {
    inner: S,
    layer: FlagsLayer<K>,
}

impl<S: Clone, K: Clone> Clone for FlagsService<S, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug> fmt::Debug for FlagsService<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagsService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

fn query<'a>(q: Option<&'a str>, name: &str) -> Option<&'a str> {
    q?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Builds the evaluation context for `req` as `layer` is configured.
fn context<B, K>(layer: &FlagsLayer<K>, req: &Request<B>) -> Option<EvaluationContext>
where
    K: KeyExtractor<Request<B>>,
    K::Key: IntoTargetingKey,
{
    let key = layer
        .key
        .extract(req)
        .ok()
        .and_then(IntoTargetingKey::into_targeting_key);
    if key.is_none() && layer.attrs.is_empty() {
        return None;
    }
    let mut ctx = EvaluationContext::new();
    if let Some(k) = key {
        ctx.set_targeting_key(k);
    }
    for (name, source) in layer.attrs.iter() {
        let value = match source {
            AttrSource::Header(h) => req.headers().get(h).and_then(|v| v.to_str().ok()),
            AttrSource::Cookie(c) => cookie(req.headers(), c),
            AttrSource::Query(q) => query(req.uri().query(), q),
            AttrSource::Path => Some(req.uri().path()),
            AttrSource::Method => Some(req.method().as_str()),
        };
        if let Some(v) = value {
            ctx.set(name.clone(), v);
        }
    }
    Some(ctx)
}

impl<S, K> FlagsService<S, K> {
    palisade_core::define_inner_service_accessors!();
}

impl<S, K, B> Service<Request<B>> for FlagsService<S, K>
where
    S: Service<Request<B>>,
    K: KeyExtractor<Request<B>>,
    K::Key: IntoTargetingKey,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let provider = &*self.layer.provider;
        let flags = match context(&self.layer, &req) {
            Some(ctx) => Flags::new(provider, ctx),
            None => Flags::without_context(provider),
        }
        .listeners(self.layer.listeners.clone());
        req.extensions_mut().insert(flags);
        self.inner.call(req)
    }
}

#[cfg(feature = "axum")]
mod axum_extract {
    use super::Flags;
    use axum::extract::FromRequestParts;
    use http::StatusCode;
    use http::request::Parts;

    impl<S: Send + Sync> FromRequestParts<S> for Flags {
        type Rejection = (StatusCode, &'static str);

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts.extensions.get::<Flags>().cloned().ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "Flags extractor used without palisade_toggle::FlagsLayer",
            ))
        }
    }
}
