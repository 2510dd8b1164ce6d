//! Responses the layer can add `RateLimit` fields to.

use http::HeaderMap;

/// Mutable access to a response's headers: `http::Response<B>` and (feature `reqwest`)
/// `reqwest::Response`.
// TODO(core): a `ResponseParts::headers_mut` in palisade-core would replace this.
pub trait ResponseHeaders {
    /// The response headers.
    fn headers_mut(&mut self) -> &mut HeaderMap;
}

impl<B> ResponseHeaders for http::Response<B> {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}

#[cfg(feature = "reqwest")]
impl ResponseHeaders for reqwest::Response {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}
