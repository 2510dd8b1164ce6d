//! Uniform access to the parts of a request or response that layers inspect.
//!
//! Layers are written against [`RequestParts`] and [`ResponseParts`] rather than
//! `http::Request<B>` directly, so the same layer works in a hyper/axum/tonic server and
//! around a `reqwest::Client` (feature `reqwest`).
//!
//! # Any request type
//!
//! A layer that can also run around services of other request types (a broker producer's
//! `Service<PublishRequest>`, a database call, a `Service<u64>`) takes a *mode* type
//! parameter: [`Http`] (the default: method, path, headers and extensions through
//! [`RequestParts`]) or [`AnyRequest`] (nothing is read from the request or written to the
//! response). [`RequestMode`] and [`ResponseMode`] say what a mode can reach; a layer
//! written against them has one code path for both.
//!
//! ```
//! use palisade_core::request::{AnyRequest, Http, RequestMode, ResponseMode};
//! use palisade_core::Deadline;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let mut req = http::Request::new(());
//! let deadline = Deadline::after(Duration::from_secs(1));
//! req.extensions_mut().insert(deadline);
//! assert_eq!(<Http as RequestMode<_>>::deadline(&req), Some(deadline));
//! // A plain `u64` request carries no deadline, and its response no headers.
//! assert_eq!(<AnyRequest as RequestMode<u64>>::deadline(&7), None);
//! assert!(<AnyRequest as ResponseMode<u64>>::headers_mut(&mut 7).is_none());
//! # }
//! ```

use http::{Extensions, HeaderMap, Method, StatusCode};

use crate::deadline::Deadline;

/// Read (and limited write) access to a request's method, path, headers and extensions.
pub trait RequestParts {
    /// The request method.
    fn method(&self) -> &Method;
    /// The path component of the target URI (`/` when empty).
    fn path(&self) -> &str;
    /// The query string without the leading `?`, if any.
    fn query(&self) -> Option<&str>;
    /// The request headers.
    fn headers(&self) -> &HeaderMap;
    /// The request headers, mutably (e.g. to write an outgoing `grpc-timeout`).
    fn headers_mut(&mut self) -> &mut HeaderMap;
    /// The request extensions, when the request type exposes them (`reqwest::Request` does not).
    fn extensions(&self) -> Option<&Extensions>;
    /// The request extensions, mutably, when the request type exposes them.
    fn extensions_mut(&mut self) -> Option<&mut Extensions>;
    /// The upstream the request is for, `host[:port]` without user information: the target
    /// URI's authority (a client's absolute-form request), else the `Host` header (an
    /// origin-form request, as a server receives it). `None` when neither is present.
    /// Per-upstream state (a retry budget per host) is keyed on it. The host is returned as
    /// written: `reqwest` lowercases it, `http::Uri` keeps its case.
    fn authority(&self) -> Option<&str> {
        None
    }
}

/// `host[:port]` of an authority that may carry `user:password@`.
fn strip_userinfo(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

impl<B> RequestParts for http::Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }
    fn path(&self) -> &str {
        self.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
    fn extensions(&self) -> Option<&Extensions> {
        Some(self.extensions())
    }
    fn extensions_mut(&mut self) -> Option<&mut Extensions> {
        Some(self.extensions_mut())
    }
    fn authority(&self) -> Option<&str> {
        match self.uri().authority() {
            Some(a) => Some(strip_userinfo(a.as_str())),
            None => self
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty()),
        }
    }
}

#[cfg(feature = "reqwest")]
impl RequestParts for reqwest::Request {
    fn method(&self) -> &Method {
        self.method()
    }
    fn path(&self) -> &str {
        self.url().path()
    }
    fn query(&self) -> Option<&str> {
        self.url().query()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
    fn extensions(&self) -> Option<&Extensions> {
        None
    }
    fn extensions_mut(&mut self) -> Option<&mut Extensions> {
        None
    }
    fn authority(&self) -> Option<&str> {
        let a = strip_userinfo(self.url().authority());
        (!a.is_empty()).then_some(a)
    }
}

/// Access to a response's status and headers: read for failure classification, write for
/// layers that annotate responses (e.g. `RateLimit` fields).
pub trait ResponseParts {
    /// The response status.
    fn status(&self) -> StatusCode;
    /// The response headers.
    fn headers(&self) -> &HeaderMap;
    /// The response headers, mutably.
    fn headers_mut(&mut self) -> &mut HeaderMap;
}

impl<B> ResponseParts for http::Response<B> {
    fn status(&self) -> StatusCode {
        self.status()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}

#[cfg(feature = "reqwest")]
impl ResponseParts for reqwest::Response {
    fn status(&self) -> StatusCode {
        self.status()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}

/// The default mode of a layer: the request is HTTP-shaped ([`RequestParts`]: method, path,
/// headers, extensions, so deadlines travel in extensions) and so is the response
/// ([`ResponseParts`]). See the [module docs](self#any-request-type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Http;

/// The mode of a layer that takes any request type: nothing is read from the request
/// (no headers, no extensions, so no [`Deadline`] travels in it) and nothing is written to
/// the response. See the [module docs](self#any-request-type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AnyRequest;

/// What a layer in mode `Self` can read from a request of type `R`.
pub trait RequestMode<R: ?Sized>: Send + Sync + 'static {
    /// The [`Deadline`] an outer layer put on the request, if requests of this mode carry
    /// one.
    fn deadline(req: &R) -> Option<Deadline>;
}

impl<R: RequestParts + ?Sized> RequestMode<R> for Http {
    #[inline]
    fn deadline(req: &R) -> Option<Deadline> {
        Deadline::from_request(req)
    }
}

impl<R: ?Sized> RequestMode<R> for AnyRequest {
    #[inline]
    fn deadline(_req: &R) -> Option<Deadline> {
        None
    }
}

/// What a layer in mode `Self` can write to a response of type `Res`.
pub trait ResponseMode<Res: ?Sized>: Send + Sync + 'static {
    /// The response's headers, if responses of this mode have them (to annotate, e.g. with
    /// `RateLimit` fields).
    fn headers_mut(res: &mut Res) -> Option<&mut HeaderMap>;
}

impl<Res: ResponseParts + ?Sized> ResponseMode<Res> for Http {
    #[inline]
    fn headers_mut(res: &mut Res) -> Option<&mut HeaderMap> {
        Some(res.headers_mut())
    }
}

impl<Res: ?Sized> ResponseMode<Res> for AnyRequest {
    #[inline]
    fn headers_mut(_res: &mut Res) -> Option<&mut HeaderMap> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_parts() {
        let mut req = http::Request::post("http://h/a/b?x=1").body(()).unwrap();
        assert_eq!(RequestParts::method(&req), Method::POST);
        assert_eq!(RequestParts::path(&req), "/a/b");
        assert_eq!(RequestParts::query(&req), Some("x=1"));
        assert!(RequestParts::extensions_mut(&mut req).is_some());
        assert_eq!(RequestParts::authority(&req), Some("h"));
    }

    #[test]
    fn authority_from_uri_then_host_header() {
        let req = http::Request::get("http://u:p@Api.example:8443/x")
            .body(())
            .unwrap();
        assert_eq!(RequestParts::authority(&req), Some("Api.example:8443"));
        let req = http::Request::get("/x")
            .header("host", "origin.example")
            .body(())
            .unwrap();
        assert_eq!(RequestParts::authority(&req), Some("origin.example"));
        let req = http::Request::get("/x").body(()).unwrap();
        assert_eq!(RequestParts::authority(&req), None);
    }

    #[cfg(feature = "reqwest")]
    #[test]
    fn reqwest_request_parts() {
        let mut req = reqwest::Request::new(
            Method::PUT,
            "http://example.invalid/items/7?force=1".parse().unwrap(),
        );
        RequestParts::headers_mut(&mut req)
            .insert("idempotency-key", http::HeaderValue::from_static("\"k\""));
        assert_eq!(RequestParts::method(&req), Method::PUT);
        assert_eq!(RequestParts::path(&req), "/items/7");
        assert_eq!(RequestParts::query(&req), Some("force=1"));
        assert_eq!(RequestParts::headers(&req)["idempotency-key"], "\"k\"");
        // reqwest keeps its extensions private: layers must not rely on them.
        assert!(RequestParts::extensions(&req).is_none());
        assert_eq!(RequestParts::authority(&req), Some("example.invalid"));
        let req = reqwest::Request::new(
            Method::GET,
            "http://u:p@Example.invalid:8080/".parse().unwrap(),
        );
        assert_eq!(RequestParts::authority(&req), Some("example.invalid:8080"));
    }
}
