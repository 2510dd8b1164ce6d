//! [`TranslateLayer`].

use tower_layer::Layer;

use super::service::Translate;
use super::translator::FnTranslator;

/// Wraps a service of the domain model in a [`Translate`], so that it speaks an external
/// model (see the [module docs](super)).
#[derive(Debug, Clone, Copy)]
pub struct TranslateLayer<T> {
    translator: T,
}

impl<T> TranslateLayer<T> {
    /// A layer translating with `translator` (a type implementing
    /// [`ToDomain`](super::ToDomain) and [`FromDomain`](super::FromDomain)).
    pub const fn new(translator: T) -> Self {
        Self { translator }
    }
}

impl<F, G> TranslateLayer<FnTranslator<F, G>> {
    /// A layer translating requests with `to_domain` and responses with `from_domain`.
    pub const fn from_fns(to_domain: F, from_domain: G) -> Self {
        Self::new(FnTranslator::new(to_domain, from_domain))
    }
}

impl<S, T: Clone> Layer<S> for TranslateLayer<T> {
    type Service = Translate<S, T>;
    fn layer(&self, inner: S) -> Translate<S, T> {
        Translate::new(inner, self.translator.clone())
    }
}
