//! The translation traits, and closures as translators.

use super::error::TranslationError;

/// Translates an external request `Ext` into the domain's request.
pub trait ToDomain<Ext> {
    /// The domain request.
    type Domain;
    /// Translates, or says which field does not fit (a [`TranslationError::request`]).
    fn to_domain(&self, external: Ext) -> Result<Self::Domain, TranslationError>;
}

/// Translates the domain's response `Res` back into the external model.
pub trait FromDomain<Res> {
    /// The external response.
    type External;
    /// Translates, or says which field does not fit (a [`TranslationError::response`]).
    #[allow(clippy::wrong_self_convention)] // the pattern's own names: to_domain / from_domain
    fn from_domain(&self, domain: Res) -> Result<Self::External, TranslationError>;
}

/// Two closures as a translator: `to_domain` for requests, `from_domain` for responses
/// (see [`TranslateLayer::from_fns`](super::TranslateLayer::from_fns)).
#[derive(Debug, Clone, Copy)]
pub struct FnTranslator<F, G> {
    to_domain: F,
    from_domain: G,
}

impl<F, G> FnTranslator<F, G> {
    /// A translator from the two closures.
    pub const fn new(to_domain: F, from_domain: G) -> Self {
        Self {
            to_domain,
            from_domain,
        }
    }
}

impl<Ext, D, F, G> ToDomain<Ext> for FnTranslator<F, G>
where
    F: Fn(Ext) -> Result<D, TranslationError>,
{
    type Domain = D;
    fn to_domain(&self, external: Ext) -> Result<D, TranslationError> {
        (self.to_domain)(external)
    }
}

impl<Res, E, F, G> FromDomain<Res> for FnTranslator<F, G>
where
    G: Fn(Res) -> Result<E, TranslationError>,
{
    type External = E;
    fn from_domain(&self, domain: Res) -> Result<E, TranslationError> {
        (self.from_domain)(domain)
    }
}
