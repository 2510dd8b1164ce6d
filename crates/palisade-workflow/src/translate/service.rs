//! [`Translate`].

use std::task::{Context, Poll};

use palisade_core::BoxError;
use tower_service::Service;

use super::future::ResponseFuture;
use super::translator::{FromDomain, ToDomain};

/// A service of the domain model behind an anti-corruption layer: requests are translated
/// with [`ToDomain`], responses with [`FromDomain`]; a failure either way is a
/// [`TranslationError`](super::TranslationError) boxed as a rejection, never a panic.
#[derive(Debug, Clone)]
pub struct Translate<S, T> {
    inner: S,
    translator: T,
}

impl<S, T> Translate<S, T> {
    /// Wraps `inner`, translating with `translator`.
    pub const fn new(inner: S, translator: T) -> Self {
        Self { inner, translator }
    }

    palisade_core::define_inner_service_accessors!();
}

impl<S, T, Ext> Service<Ext> for Translate<S, T>
where
    T: ToDomain<Ext> + FromDomain<S::Response> + Clone,
    S: Service<<T as ToDomain<Ext>>::Domain>,
    S::Error: Into<BoxError>,
{
    type Response = <T as FromDomain<S::Response>>::External;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, T>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Ext) -> Self::Future {
        match self.translator.to_domain(req) {
            Ok(domain) => ResponseFuture::called(self.inner.call(domain), self.translator.clone()),
            Err(e) => ResponseFuture::refused(e),
        }
    }
}
