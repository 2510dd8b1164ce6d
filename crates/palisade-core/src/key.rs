//! Key extraction: which bucket does a request belong to?
//!
//! Rate limits, keyed breakers and bulkheads, idempotency scopes, sticky traffic splits and
//! flag targeting all partition requests by a key taken from the request. A missing or
//! malformed input gives a typed [`KeyError`] (rendered as 400 by
//! [`HandleRejections`](crate::HandleRejections)), never a panic.
//!
//! # Example
//! ```
//! use palisade_core::key::{ForwardedIp, HeaderKey, KeyExtractor, PeerAddr};
//! use std::net::SocketAddr;
//!
//! // Only our load balancer at 10.0.0.0/8 may tell us who the client is.
//! let ip = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
//! let mut req = http::Request::get("/").header("x-forwarded-for", "1.2.3.4, 203.0.113.9").body(()).unwrap();
//! req.extensions_mut().insert(PeerAddr("10.1.2.3:5000".parse::<SocketAddr>().unwrap()));
//! assert_eq!(ip.extract(&req).unwrap().to_string(), "203.0.113.9"); // rightmost untrusted hop
//!
//! let api_key = HeaderKey::new(http::HeaderName::from_static("x-api-key"));
//! assert!(api_key.extract(&req).is_err()); // missing header → KeyError (400)
//! ```

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderName, StatusCode, header};
use ipnet::IpNet;

use crate::config::ConfigError;
use crate::forwarded::{Hop, forwarded_hops, x_forwarded_for_hops};
use crate::grpc::GrpcCode;
use crate::rejection::Rejection;
use crate::request::RequestParts;

/// Extracts a partition key from a request.
pub trait KeyExtractor<R: ?Sized>: Clone + Send + Sync + 'static {
    /// The key type.
    type Key: Clone + Eq + Hash + Send + Sync + fmt::Debug + 'static;
    /// Extracts the key, or says why it cannot.
    fn extract(&self, req: &R) -> Result<Self::Key, KeyError>;
}

/// Why a key could not be extracted. Rendered as 400 / INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The input the key comes from is absent (`what` names it, e.g. `"header x-api-key"`).
    Missing {
        /// What was looked for.
        what: &'static str,
    },
    /// The input is present but malformed.
    Invalid {
        /// What was malformed.
        what: &'static str,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { what } => write!(f, "request has no {what}"),
            Self::Invalid { what } => write!(f, "request has a malformed {what}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl Rejection for KeyError {
    fn kind(&self) -> &'static str {
        "bad_key"
    }
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::InvalidArgument
    }
}

/// Default longest header value accepted as a key, in bytes.
pub const DEFAULT_MAX_KEY_LEN: usize = 256;

/// The value of one request header, as a `String` (visible ASCII only, at most
/// [`DEFAULT_MAX_KEY_LEN`] bytes unless changed, so a hostile client cannot make keys huge).
///
/// A header sent on several lines: the **first** line is the key (`HeaderMap::get`), the
/// others are ignored. Surrounding whitespace is trimmed; an empty, non-ASCII or too long
/// value is [`KeyError::Invalid`].
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
    what: &'static str,
    max_len: usize,
}

impl HeaderKey {
    /// Keys requests by the header `name`.
    pub fn new(name: HeaderName) -> Self {
        Self {
            name,
            what: "key header",
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }
    /// Sets the longest accepted value in bytes.
    #[must_use]
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }
}

impl<R: RequestParts + ?Sized> KeyExtractor<R> for HeaderKey {
    type Key = String;
    fn extract(&self, req: &R) -> Result<String, KeyError> {
        let value = req
            .headers()
            .get(&self.name)
            .ok_or(KeyError::Missing { what: self.what })?;
        let s = value
            .to_str()
            .map_err(|_| KeyError::Invalid { what: self.what })?
            .trim();
        if s.is_empty() || s.len() > self.max_len {
            return Err(KeyError::Invalid { what: self.what });
        }
        Ok(s.to_owned())
    }
}

/// The TCP peer address of a connection, as a request extension.
///
/// Insert it yourself in a hyper server (`req.extensions_mut().insert(PeerAddr(addr))`);
/// axum's `ConnectInfo<SocketAddr>` and a bare `SocketAddr` extension are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// The peer IP, canonical (an IPv4-mapped IPv6 peer such as `::ffff:10.1.2.3`, as a
/// dual-stack listener reports IPv4 clients, is `10.1.2.3`).
fn peer_ip<R: RequestParts + ?Sized>(req: &R) -> Option<IpAddr> {
    let ext = req.extensions()?;
    if let Some(PeerAddr(a)) = ext.get::<PeerAddr>() {
        return Some(a.ip().to_canonical());
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(a)) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(a.ip().to_canonical());
    }
    ext.get::<SocketAddr>().map(|a| a.ip().to_canonical())
}

/// Default prefix length by which [`ipv6_prefix`] groups IPv6 clients for rate-limit keys:
/// a /64 is the smallest network an ISP hands a subscriber (RFC 6177), so one client can
/// pick any of 2⁶⁴ addresses and would otherwise get as many buckets.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Groups an IPv6 address by its first `bits` bits (the others are zeroed; `bits` above
/// 128 count as 128); an IPv4 address is returned unchanged. IPv4-mapped IPv6 addresses
/// are turned into IPv4 first.
///
/// ```
/// use palisade_core::key::ipv6_prefix;
/// let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
/// assert_eq!(ipv6_prefix(ip("2001:db8:1:2:aaaa::1"), 64), ip("2001:db8:1:2::"));
/// assert_eq!(ipv6_prefix(ip("::ffff:10.1.2.3"), 64), ip("10.1.2.3"));
/// assert_eq!(ipv6_prefix(ip("2001:db8::1"), 128), ip("2001:db8::1"));
/// ```
pub fn ipv6_prefix(ip: IpAddr, bits: u8) -> IpAddr {
    match ip.to_canonical() {
        // `bits <= 128` would be equivalent: at 128 the mask is all ones (excluded in
        // .cargo/mutants.toml); above 128 the subtraction below would overflow.
        IpAddr::V6(v6) if bits < 128 => {
            let mask = u128::MAX.checked_shl(u32::from(128 - bits)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        other => other,
    }
}

/// The peer IP of the connection (see [`PeerAddr`]). Ignores forwarding headers.
///
/// IPv4-mapped IPv6 peers are returned as IPv4. Group IPv6 clients by network with
/// [`PeerIp::ipv6_prefix`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerIp;

impl PeerIp {
    /// The peer IP with IPv6 addresses grouped by their first `bits` bits (see
    /// [`ipv6_prefix`]; [`DEFAULT_IPV6_PREFIX`] is /64).
    pub fn ipv6_prefix(self, bits: u8) -> Ipv6Prefix<Self> {
        Ipv6Prefix::new(self, bits)
    }
}

impl<R: RequestParts + ?Sized> KeyExtractor<R> for PeerIp {
    type Key = IpAddr;
    fn extract(&self, req: &R) -> Result<IpAddr, KeyError> {
        peer_ip(req).ok_or(KeyError::Missing {
            what: "peer address",
        })
    }
}

/// An IP key extractor whose IPv6 keys are grouped by prefix; see [`PeerIp::ipv6_prefix`].
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Prefix<E> {
    inner: E,
    bits: u8,
}

impl<E> Ipv6Prefix<E> {
    /// Groups the IPv6 keys of `inner` by their first `bits` bits (at most 128).
    pub fn new(inner: E, bits: u8) -> Self {
        Self {
            inner,
            bits: bits.min(128),
        }
    }
    /// The prefix length.
    pub fn bits(&self) -> u8 {
        self.bits
    }
}

impl<R: ?Sized, E: KeyExtractor<R, Key = IpAddr>> KeyExtractor<R> for Ipv6Prefix<E> {
    type Key = IpAddr;
    fn extract(&self, req: &R) -> Result<IpAddr, KeyError> {
        Ok(ipv6_prefix(self.inner.extract(req)?, self.bits))
    }
}

/// Parses a list of networks from configuration: CIDRs (`"10.0.0.0/8"`, `"::1/128"`) or bare
/// addresses (one host each). A bad entry is reported as `field[i]`, the `i`-th of the list.
///
/// ```
/// let nets = palisade_core::key::parse_cidrs("trusted", ["10.0.0.0/8", "::1"]).unwrap();
/// assert_eq!(nets.len(), 2);
/// let err = palisade_core::key::parse_cidrs("trusted", ["10.0.0.0/8", "nope"]).unwrap_err();
/// assert_eq!(err.field(), "trusted[1]");
/// ```
pub fn parse_cidrs<I, S>(field: &str, cidrs: I) -> Result<Vec<IpNet>, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    cidrs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let c = c.as_ref().trim();
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        format!("{field}[{i}]"),
                        format!("`{c}` is not a CIDR such as \"10.0.0.0/8\" or an IP address"),
                    )
                })
        })
        .collect()
}

/// Which forwarding header [`ForwardedIp`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardingHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// The client IP behind trusted proxies.
///
/// The forwarding header is honoured only when the TCP peer is inside one of the trusted
/// CIDRs; the hops are then walked from the right, skipping trusted proxies, and the first
/// untrusted hop is the client. A client that forges the header from outside gets its own
/// peer IP as key, and forged hops to the left of the real one are never reached: a
/// malformed hop (not an IP address, `for=unknown`, an obfuscated `for=_name`) is a
/// [`KeyError::Invalid`] only when it is where the walk stops. All lines of the header
/// count, in order. When every hop is trusted, the leftmost one is the client.
///
/// - Addresses are compared canonically: an IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, what a
///   dual-stack listener reports for an IPv4 proxy) is `10.1.2.3` and matches `10.0.0.0/8`.
/// - `Forwarded` (RFC 7239) is parsed properly (see [`forwarded`](crate::forwarded)):
///   quoted strings may hold commas and semicolons, and an element without `for=` (say a
///   client-sent `proto=https`) is not a hop, so it cannot turn a valid chain into a 400.
/// - [`ipv6_prefix`](Self::ipv6_prefix) groups IPv6 clients by network (the key only; trust
///   is checked on full addresses).
///
/// No allocation per request.
#[derive(Debug, Clone)]
pub struct ForwardedIp {
    trusted: Arc<[IpNet]>,
    header: ForwardingHeader,
    ipv6_prefix: u8,
}

impl ForwardedIp {
    /// Trusts the given proxy networks.
    pub fn new(trusted: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            trusted: trusted.into_iter().collect(),
            header: ForwardingHeader::default(),
            ipv6_prefix: 128,
        }
    }

    /// Trusts the given CIDRs (`"10.0.0.0/8"`, `"::1/128"`; a bare address means one host).
    /// A bad entry is named `trusted_proxies[i]`.
    pub fn parse<I, S>(cidrs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::new(parse_cidrs("trusted_proxies", cidrs)?))
    }

    /// Reads this header instead of `X-Forwarded-For`.
    #[must_use]
    pub fn header(mut self, header: ForwardingHeader) -> Self {
        self.header = header;
        self
    }

    /// Groups IPv6 client addresses by their first `bits` bits (at most 128, the default:
    /// no grouping); see [`ipv6_prefix`]. Rate limits want [`DEFAULT_IPV6_PREFIX`] (/64).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        // Trusted networks written as IPv4-mapped IPv6 match their IPv4 form too.
        self.trusted.iter().any(|n| {
            n.contains(&ip)
                || match (n, ip) {
                    (IpNet::V6(n6), IpAddr::V4(v4)) => n6.contains(&v4.to_ipv6_mapped()),
                    _ => false,
                }
        })
    }

    /// The client IP, unmasked.
    fn client<R: RequestParts + ?Sized>(&self, req: &R, peer: IpAddr) -> Result<IpAddr, KeyError> {
        if !self.is_trusted(peer) {
            return Ok(peer);
        }
        let (name, what) = match self.header {
            ForwardingHeader::XForwardedFor => (
                HeaderName::from_static("x-forwarded-for"),
                "x-forwarded-for header",
            ),
            ForwardingHeader::Forwarded => (header::FORWARDED, "forwarded header"),
        };
        // Walking from the right and stopping at the first untrusted (or malformed) hop
        // finds the *last* such hop of the left-to-right order; with none, the leftmost hop
        // (or the peer). One left-to-right pass computes that without collecting the hops.
        let mut stop: Option<Hop> = None;
        let mut leftmost: Option<IpAddr> = None;
        let mut visit = |hop: Hop| {
            match hop {
                Hop::Ip(ip) if self.is_trusted(ip) => {}
                other => stop = Some(other),
            }
            if leftmost.is_none()
                && let Hop::Ip(ip) = hop
            {
                leftmost = Some(ip);
            }
        };
        for value in req.headers().get_all(&name) {
            let Ok(line) = value.to_str() else {
                visit(Hop::Malformed);
                continue;
            };
            match self.header {
                ForwardingHeader::XForwardedFor => x_forwarded_for_hops(line).for_each(&mut visit),
                ForwardingHeader::Forwarded => forwarded_hops(line).for_each(&mut visit),
            }
        }
        match stop {
            Some(Hop::Ip(ip)) => Ok(ip),
            Some(Hop::Malformed) => Err(KeyError::Invalid { what }),
            None => Ok(leftmost.unwrap_or(peer)),
        }
    }
}

impl<R: RequestParts + ?Sized> KeyExtractor<R> for ForwardedIp {
    type Key = IpAddr;
    fn extract(&self, req: &R) -> Result<IpAddr, KeyError> {
        let peer = peer_ip(req).ok_or(KeyError::Missing {
            what: "peer address",
        })?;
        Ok(ipv6_prefix(self.client(req, peer)?, self.ipv6_prefix))
    }
}

/// The request path (without query) as key: one bucket per raw path.
///
/// Prefer a route template (axum's `MatchedPath`, through [`key_fn`]) where paths carry ids,
/// so that keys stay bounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathKey;

impl<R: RequestParts + ?Sized> KeyExtractor<R> for PathKey {
    type Key = String;
    fn extract(&self, req: &R) -> Result<String, KeyError> {
        Ok(req.path().to_owned())
    }
}

/// One key for every request: a global bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalKey;

impl<R: ?Sized> KeyExtractor<R> for GlobalKey {
    type Key = ();
    fn extract(&self, _req: &R) -> Result<(), KeyError> {
        Ok(())
    }
}

/// A key extractor made from a closure; see [`key_fn`].
#[derive(Clone, Copy)]
pub struct KeyFn<F>(F);

impl<F> fmt::Debug for KeyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFn").finish_non_exhaustive()
    }
}

/// Makes a [`KeyExtractor`] from a closure `Fn(&R) -> Result<K, KeyError>`.
///
/// ```
/// use palisade_core::key::{key_fn, KeyError, KeyExtractor};
/// let tenant = key_fn(|req: &http::Request<()>| {
///     req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned)
///         .ok_or(KeyError::Missing { what: "x-tenant header" })
/// });
/// let req = http::Request::get("/").header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(tenant.extract(&req).unwrap(), "acme");
/// ```
pub fn key_fn<F>(f: F) -> KeyFn<F> {
    KeyFn(f)
}

impl<R: ?Sized, F, K> KeyExtractor<R> for KeyFn<F>
where
    F: Fn(&R) -> Result<K, KeyError> + Clone + Send + Sync + 'static,
    K: Clone + Eq + Hash + Send + Sync + fmt::Debug + 'static,
{
    type Key = K;
    fn extract(&self, req: &R) -> Result<K, KeyError> {
        (self.0)(req)
    }
}

/// Both keys: e.g. `(HeaderKey::new(tenant), PathKey)` for one bucket per tenant and path.
impl<R: ?Sized, A, B> KeyExtractor<R> for (A, B)
where
    A: KeyExtractor<R>,
    B: KeyExtractor<R>,
{
    type Key = (A::Key, B::Key);
    fn extract(&self, req: &R) -> Result<Self::Key, KeyError> {
        Ok((self.0.extract(req)?, self.1.extract(req)?))
    }
}

#[cfg(test)]
mod tests;
