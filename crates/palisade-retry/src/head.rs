//! A copy of a request head (method, URI, version, headers, extensions) kept so that a retry
//! can rebuild the request, while the first attempt is sent with the original head.
//!
//! Cloning `http::request::Parts` allocates even for a plain GET: the `HeaderMap`'s two
//! tables, and one shared-buffer header per `Bytes` that was built from a `Vec`/`String`
//! (every `HeaderValue::from_str`, every URI parsed from a `&str`/`String`) on its first
//! clone. Instead, the URI and the headers are copied *as bytes* into one buffer taken from
//! a small per-thread pool (at most 32 buffers of up to 16 KiB each) and given back when the
//! request ends: in the steady state the copy is a few `memcpy`s and no allocation. Only a
//! retry parses them back (and allocates).
//!
//! What still allocates (documented in the crate docs, "Allocations"):
//! - `Extensions::clone` when the request carries extensions (the map, one box per value):
//!   http offers no way to copy them into a reused buffer;
//! - `Method::clone` of a non-standard method longer than 15 bytes;
//! - the pool's buffers themselves: on a thread's first retryable requests, when more
//!   requests are in flight on a thread than it has pooled buffers, or when a head is
//!   larger than any seen before on that thread.

use std::cell::RefCell;

use bytes::Bytes;
use http::request::Parts;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

/// Buffers kept per thread for reuse.
const POOL_MAX: usize = 32;
/// Buffers larger than this are freed rather than pooled.
const KEEP_MAX_BYTES: usize = 16 * 1024;
/// In a header's length word: the value is sensitive.
const SENSITIVE: u32 = 1 << 31;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer() -> Vec<u8> {
    POOL.try_with(|p| p.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_MAX_BYTES {
        return;
    }
    buf.clear();
    // During thread teardown the pool is gone: the buffer is just freed.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(buf);
        }
    });
}

/// A request head, copied for retries.
///
/// `text` holds the URI, then for each header: the name's length and the value's length
/// (one little-endian `u64`: name length low, value length with [`SENSITIVE`] high), the
/// name, the value.
#[derive(Debug)]
pub(crate) struct HeadCopy {
    method: Method,
    extensions: Extensions,
    text: Vec<u8>,
    uri_len: u32,
    headers: u32,
    version: Version,
}

impl HeadCopy {
    /// Copies `parts`; `None` (not retried) for a head over 2 GiB.
    pub(crate) fn new(parts: &Parts) -> Option<Self> {
        Self::copy(
            &parts.method,
            &parts.uri,
            parts.version,
            &parts.headers,
            &parts.extensions,
        )
    }

    /// Copies the head of `req`.
    #[inline]
    pub(crate) fn of<B>(req: &Request<B>) -> Option<Self> {
        Self::copy(
            req.method(),
            req.uri(),
            req.version(),
            req.headers(),
            req.extensions(),
        )
    }

    fn copy(
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Option<Self> {
        let mut text = take_buffer();
        // As `Uri`'s `Display` (`Uri::from_str` parses it back to an equal URI).
        if let Some(scheme) = uri.scheme_str() {
            text.extend_from_slice(scheme.as_bytes());
            text.extend_from_slice(b"://");
        }
        if let Some(authority) = uri.authority() {
            text.extend_from_slice(authority.as_str().as_bytes());
        }
        if let Some(pq) = uri.path_and_query() {
            text.extend_from_slice(pq.as_str().as_bytes());
        }
        let uri_len = text.len();
        for (name, value) in headers {
            let (name, value) = (name.as_str().as_bytes(), value);
            if name.len() >= 1 << 16 || value.len() >= 1 << 31 {
                give_back(text);
                return None;
            }
            let flag = if value.is_sensitive() { SENSITIVE } else { 0 };
            let lens = u64::from(name.len() as u32) | u64::from(value.len() as u32 | flag) << 32;
            text.extend_from_slice(&lens.to_le_bytes());
            text.extend_from_slice(name);
            text.extend_from_slice(value.as_bytes());
        }
        if text.len() >= 1 << 31 {
            give_back(text);
            return None;
        }
        Some(Self {
            method: method.clone(),
            extensions: extensions.clone(),
            text,
            uri_len: uri_len as u32,
            headers: headers.len() as u32,
            version,
        })
    }

    /// A new request with this head and `body`; `None` if the copy does not parse back,
    /// which only happens for a header value made with `from_maybe_shared_unchecked` from
    /// bytes http would have rejected.
    pub(crate) fn rebuild<B>(&self, body: B) -> Option<Request<B>> {
        // One buffer for the URI and every value; each part is a cheap slice of it.
        let all = Bytes::copy_from_slice(&self.text);
        let uri_len = self.uri_len as usize;
        let uri = Uri::from_maybe_shared(all.slice(..uri_len)).ok()?;
        let mut headers = HeaderMap::with_capacity(self.headers as usize);
        let word = |at: usize| u32::from_le_bytes(all[at..at + 4].try_into().expect("4 bytes"));
        let mut at = uri_len;
        while at < all.len() {
            let name_len = word(at) as usize;
            let value_word = word(at + 4);
            let value_len = (value_word & !SENSITIVE) as usize;
            let name_end = at + 8 + name_len;
            let value_end = name_end + value_len;
            let name = HeaderName::from_bytes(&all[at + 8..name_end]).ok()?;
            let mut value = HeaderValue::from_maybe_shared(all.slice(name_end..value_end)).ok()?;
            value.set_sensitive(value_word & SENSITIVE != 0);
            headers.append(name, value);
            at = value_end;
        }
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = headers;
        *req.extensions_mut() = self.extensions.clone();
        Some(req)
    }
}

impl Drop for HeadCopy {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(req: Request<()>) {
        let (parts, ()) = req.into_parts();
        let copy = HeadCopy::new(&parts).unwrap();
        let back = copy.rebuild(()).unwrap();
        assert_eq!(back.method(), parts.method);
        assert_eq!(back.uri(), &parts.uri);
        assert_eq!(back.uri().to_string(), parts.uri.to_string());
        assert_eq!(back.version(), parts.version);
        assert_eq!(back.headers(), &parts.headers);
        let sensitive = |h: &HeaderMap| {
            h.values()
                .map(HeaderValue::is_sensitive)
                .collect::<Vec<_>>()
        };
        assert_eq!(sensitive(back.headers()), sensitive(&parts.headers));
        assert_eq!(
            back.extensions().get::<u32>(),
            parts.extensions.get::<u32>()
        );
    }

    #[test]
    fn heads_round_trip() {
        roundtrip(Request::get("/items?page=2").body(()).unwrap());
        roundtrip(Request::get("/").body(()).unwrap());
        roundtrip(
            Request::get("https://user@example.com:8443/a/b?c=d&e")
                .header("accept", "application/json")
                .header("x-custom", "one")
                .header("x-custom", "two")
                .header("accept", "text/plain")
                .header("obs", &b"caf\xe9"[..])
                .version(Version::HTTP_2)
                .extension(7u32)
                .body(())
                .unwrap(),
        );
        roundtrip(Request::get("http://example.com").body(()).unwrap());
        roundtrip(Request::connect("example.com:443").body(()).unwrap());
        roundtrip(Request::options("*").body(()).unwrap());
        roundtrip(
            Request::builder()
                .method("A-VERY-LONG-EXTENSION-METHOD")
                .uri("/x")
                .body(())
                .unwrap(),
        );
        let mut req = Request::get("/secret").body(()).unwrap();
        let mut v = HeaderValue::from_static("Bearer t");
        v.set_sensitive(true);
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
        roundtrip(req);
    }

    #[test]
    fn buffers_are_reused() {
        let (parts, ()) = Request::get("/a")
            .header("accept", "*/*")
            .body(())
            .unwrap()
            .into_parts();
        drop(HeadCopy::new(&parts).unwrap());
        let ptr = POOL.with(|p| p.borrow().last().map(Vec::as_ptr));
        let copy = HeadCopy::new(&parts).unwrap();
        assert_eq!(Some(copy.text.as_ptr()), ptr);
    }
}
