//! Who a key belongs to: the scope folded into every stored key and fingerprint, and its
//! stable text encoding.
//!
//! # Default: the caller's credentials
//! [`IdempotencyLayer::new`](crate::IdempotencyLayer::new) scopes keys by
//! [`CredentialScope`]: SHA-256 over the request's `Authorization` value and an identity
//! header (`x-api-key` unless changed). Two API keys sending `Idempotency-Key: "order-1"`
//! therefore get two records; neither can see the other's response or learn that its key
//! exists. A request with neither header is refused with
//! [`KeyError::Missing`](palisade_core::KeyError) (400) before the store is touched.
//!
//! Credentials that rotate between a request and its retry (short-lived bearer tokens) give
//! the retry another scope, so it runs again: scope by the authenticated principal instead,
//! with [`scope`](crate::IdempotencyLayer::scope) and a [`key_fn`](palisade_core::key::key_fn)
//! reading what your authentication layer put in the request's extensions.
//!
//! Opting out is explicit: [`global_scope`](crate::IdempotencyLayer::global_scope) (or
//! `scope = "global"` in [`IdempotencyConfig`](crate::IdempotencyConfig)).
//!
//! # Store key encoding (stable, version 1)
//! ```text
//! store key = "i1/" scope "/" escape(client key)
//! scope     = "g"                         global (`()`)
//!           / "s=" escape(string)          a string (header value, path, closure result)
//!           / "ip=" address                an IP address (`Display` form)
//!           / "n=" decimal                 an integer
//!           / "c=" 64 hex digits           a credentials hash (CredentialScope)
//!           / "(" scope "," scope ")"      a pair of scopes
//! escape    = every byte outside A-Z a-z 0-9 - . _ ~ written as %XX (upper-case hex)
//! ```
//! Escaping makes `/`, `,`, `(`, `)`, `=` and `%` unambiguous separators, so no two
//! (scope, key) pairs share a store key. The Redis store then hashes the store key
//! (see `RedisStore::redis_key`). The inbox uses `"in1/" escape(prefix) "/" escape(id)`.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderName;
use palisade_core::key_config::ConfiguredKeyValue;
use palisade_core::{KeyError, KeyExtractor, RequestParts};
use sha2::{Digest, Sha256};

/// A scope value with a stable text encoding (see the [module docs](self)). Implemented for
/// the keys of palisade-core's extractors; implement it for your own closure's key type.
pub trait ScopeKey {
    /// Appends this scope's encoding to `out`.
    fn write_scope(&self, out: &mut String);
}

/// Appends `bytes` with every byte outside `A-Z a-z 0-9 - . _ ~` written as `%XX`.
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

impl ScopeKey for () {
    fn write_scope(&self, out: &mut String) {
        out.push('g');
    }
}

impl ScopeKey for String {
    fn write_scope(&self, out: &mut String) {
        self.as_str().write_scope(out);
    }
}

impl ScopeKey for str {
    fn write_scope(&self, out: &mut String) {
        out.push_str("s=");
        escape_into(out, self.as_bytes());
    }
}

impl ScopeKey for &'static str {
    fn write_scope(&self, out: &mut String) {
        (**self).write_scope(out);
    }
}

impl ScopeKey for Arc<str> {
    fn write_scope(&self, out: &mut String) {
        (**self).write_scope(out);
    }
}

impl ScopeKey for IpAddr {
    fn write_scope(&self, out: &mut String) {
        let _ = write!(out, "ip={self}");
    }
}

macro_rules! int_scope {
    ($($t:ty),*) => {$(
        impl ScopeKey for $t {
            fn write_scope(&self, out: &mut String) {
                let _ = write!(out, "n={self}");
            }
        }
    )*};
}
int_scope!(
    u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, usize, isize
);

impl<A: ScopeKey, B: ScopeKey> ScopeKey for (A, B) {
    fn write_scope(&self, out: &mut String) {
        out.push('(');
        self.0.write_scope(out);
        out.push(',');
        self.1.write_scope(out);
        out.push(')');
    }
}

impl ScopeKey for ConfiguredKeyValue {
    fn write_scope(&self, out: &mut String) {
        match self {
            Self::Global => ().write_scope(out),
            Self::Ip(ip) => ip.write_scope(out),
            Self::Str(s) => s.write_scope(out),
        }
    }
}

/// The store key for `scope` and the client's `key` (see the [module docs](self)).
pub fn store_key<T: ScopeKey + ?Sized>(scope: &T, key: &str) -> String {
    let mut out = String::with_capacity(16 + key.len() + 72);
    out.push_str("i1/");
    scope.write_scope(&mut out);
    out.push('/');
    escape_into(&mut out, key.as_bytes());
    out
}

/// Default identity header of [`CredentialScope`]: `x-api-key`.
pub const DEFAULT_IDENTITY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The default scope: a SHA-256 over the request's `Authorization` value(s) and an identity
/// header (default [`DEFAULT_IDENTITY_HEADER`]); see the [module docs](self). A request
/// carrying neither is refused with [`KeyError::Missing`] (400).
#[derive(Debug, Clone)]
pub struct CredentialScope {
    identity: Option<HeaderName>,
}

impl Default for CredentialScope {
    fn default() -> Self {
        Self {
            identity: Some(DEFAULT_IDENTITY_HEADER),
        }
    }
}

impl CredentialScope {
    /// `Authorization` plus `x-api-key`.
    pub fn new() -> Self {
        Self::default()
    }
    /// Uses `name` as the identity header instead of `x-api-key`.
    #[must_use]
    pub fn identity_header(mut self, name: HeaderName) -> Self {
        self.identity = Some(name);
        self
    }
    /// Only `Authorization`, no identity header.
    #[must_use]
    pub fn authorization_only(mut self) -> Self {
        self.identity = None;
        self
    }
}

/// The hash a [`CredentialScope`] extracts. Its `Debug` form shows only a prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credentials(pub [u8; 32]);

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl ScopeKey for Credentials {
    fn write_scope(&self, out: &mut String) {
        out.push_str("c=");
        for b in self.0 {
            let _ = write!(out, "{b:02x}");
        }
    }
}

impl<R: RequestParts + ?Sized> KeyExtractor<R> for CredentialScope {
    type Key = Credentials;
    fn extract(&self, req: &R) -> Result<Credentials, KeyError> {
        let headers = req.headers();
        let mut h = Sha256::new();
        let mut found = false;
        for (tag, name) in [
            (b'a', Some(&http::header::AUTHORIZATION)),
            (b'i', self.identity.as_ref()),
        ] {
            let Some(name) = name else { continue };
            h.update([tag]);
            for v in headers.get_all(name) {
                found = true;
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
            h.update([0]);
        }
        if !found {
            return Err(KeyError::Missing {
                what: "credentials (Authorization or identity header) to scope the Idempotency-Key",
            });
        }
        Ok(Credentials(h.finalize().into()))
    }
}

/// The scope an [`IdempotencyConfig`](crate::IdempotencyConfig) builds: the caller's
/// credentials (default) or a configured key (`scope = { type = "header", ... }`, or
/// `"global"` to opt out).
#[derive(Debug, Clone)]
pub enum ConfiguredScope {
    /// [`CredentialScope`].
    Credentials(CredentialScope),
    /// A [`ConfiguredKey`](palisade_core::key_config::ConfiguredKey).
    Key(palisade_core::key_config::ConfiguredKey),
}

/// The value a [`ConfiguredScope`] extracts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfiguredScopeValue {
    /// From [`CredentialScope`].
    Credentials(Credentials),
    /// From a configured key.
    Key(ConfiguredKeyValue),
}

impl ScopeKey for ConfiguredScopeValue {
    fn write_scope(&self, out: &mut String) {
        match self {
            Self::Credentials(c) => c.write_scope(out),
            Self::Key(k) => k.write_scope(out),
        }
    }
}

impl<R: RequestParts> KeyExtractor<R> for ConfiguredScope {
    type Key = ConfiguredScopeValue;
    fn extract(&self, req: &R) -> Result<ConfiguredScopeValue, KeyError> {
        Ok(match self {
            Self::Credentials(c) => ConfiguredScopeValue::Credentials(c.extract(req)?),
            Self::Key(k) => ConfiguredScopeValue::Key(k.extract(req)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_stable_and_escaped() {
        assert_eq!(store_key(&(), "k1"), "i1/g/k1");
        assert_eq!(store_key(&"a/b".to_owned(), "k 1"), "i1/s=a%2Fb/k%201");
        assert_eq!(store_key(&("t".to_owned(), 7u32), "%"), "i1/(s=t,n=7)/%25");
        let ip: IpAddr = "::1".parse().unwrap();
        assert_eq!(store_key(&ip, "k"), "i1/ip=::1/k");
        // A scope cannot smuggle a separator: "a/g" + "k" differs from "a" + "g/k".
        assert_ne!(
            store_key(&"a/g".to_owned(), "k"),
            store_key(&"a".to_owned(), "g/k")
        );
        assert_eq!(
            store_key(&Credentials([0xab; 32]), "k"),
            format!("i1/c={}/k", "ab".repeat(32))
        );
    }

    #[test]
    fn credentials_scope() {
        let s = CredentialScope::new();
        let req = |auth: Option<&str>, key: Option<&str>| {
            let mut b = http::Request::post("/");
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            if let Some(k) = key {
                b = b.header("x-api-key", k);
            }
            b.body(()).unwrap()
        };
        assert!(matches!(
            s.extract(&req(None, None)),
            Err(KeyError::Missing { .. })
        ));
        let a = s.extract(&req(None, Some("key-a"))).unwrap();
        let b = s.extract(&req(None, Some("key-b"))).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, s.extract(&req(None, Some("key-a"))).unwrap());
        // The same bytes in the other header are another scope.
        assert_ne!(a, s.extract(&req(Some("key-a"), None)).unwrap());
        assert!(!format!("{a:?}").contains("key-a"));
        let auth_only = CredentialScope::new().authorization_only();
        assert!(auth_only.extract(&req(None, Some("key-a"))).is_err());
    }
}
