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
mod tests {
    use super::*;
    use http::Request;
    use proptest::prelude::*;

    fn req_from(peer: &str, xff: &[&str]) -> Request<()> {
        let mut b = Request::get("/p?q=1");
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut()
            .insert(PeerAddr(format!("{peer}:1234").parse().unwrap()));
        r
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
        let r = req_from("198.51.100.7", &["1.1.1.1"]);
        assert_eq!(x.extract(&r).unwrap(), ip("198.51.100.7"));
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let x = ForwardedIp::parse(["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // client forged "6.6.6.6"; proxy 10.0.0.5 appended the real client 203.0.113.9;
        // inner proxy 192.168.1.1 appended 10.0.0.5.
        let r = req_from("192.168.1.1", &["6.6.6.6, 203.0.113.9", "10.0.0.5"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        // All hops trusted: the leftmost one is the client.
        let r = req_from("10.0.0.1", &["10.0.0.2, 10.0.0.3"]);
        assert_eq!(x.extract(&r).unwrap(), ip("10.0.0.2"));
        // No header at all from a trusted peer: the peer itself.
        let r = req_from("10.0.0.1", &[]);
        assert_eq!(x.extract(&r).unwrap(), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_hops_are_400_not_panics() {
        let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
        let r = req_from("10.0.0.1", &["not-an-ip"]);
        assert_eq!(
            x.extract(&r).unwrap_err(),
            KeyError::Invalid {
                what: "x-forwarded-for header"
            }
        );
        assert_eq!(x.extract(&r).unwrap_err().status(), 400);
    }

    #[test]
    fn rfc7239_forwarded() {
        let x = ForwardedIp::parse(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardingHeader::Forwarded);
        let mut r = Request::get("/")
            .header(
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
            )
            .body(())
            .unwrap();
        r.extensions_mut()
            .insert(PeerAddr("10.0.0.1:1".parse().unwrap()));
        assert_eq!(x.extract(&r).unwrap(), ip("2001:db8:cafe::17"));
    }

    fn forwarded_req(peer: &str, lines: &[&str]) -> Request<()> {
        let mut b = Request::get("/");
        for v in lines {
            b = b.header("forwarded", *v);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
        r
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_are_ipv4() {
        // A dual-stack listener reports the IPv4 proxy 10.1.2.3 as ::ffff:10.1.2.3.
        let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
        let r = req_from("[::ffff:10.1.2.3]", &["203.0.113.9"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        // ...and a client behind it, reported mapped too, is keyed as IPv4.
        let r = req_from("[::ffff:10.1.2.3]", &["::ffff:203.0.113.9"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        // A mapped hop of a trusted proxy is skipped like its IPv4 form.
        let r = req_from("10.0.0.1", &["198.51.100.1, ::ffff:10.0.0.2"]);
        assert_eq!(x.extract(&r).unwrap(), ip("198.51.100.1"));
        // Untrusted mapped peer: its IPv4 form is the key.
        let r = req_from("[::ffff:198.51.100.7]", &["1.1.1.1"]);
        assert_eq!(x.extract(&r).unwrap(), ip("198.51.100.7"));
        assert_eq!(PeerIp.extract(&r).unwrap(), ip("198.51.100.7"));
        // Trusted CIDRs written in mapped form match IPv4 peers.
        let x = ForwardedIp::parse(["::ffff:10.0.0.0/104"]).unwrap();
        let r = req_from("10.1.2.3", &["203.0.113.9"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap().ipv6_prefix(64);
        let r = req_from("10.0.0.1", &["2001:db8:1:2:aaaa:bbbb:cccc:dddd"]);
        assert_eq!(x.extract(&r).unwrap(), ip("2001:db8:1:2::"));
        let r = req_from("10.0.0.1", &["203.0.113.9"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        // Trust is checked on the full address, grouping applies to the key only.
        let x = ForwardedIp::parse(["2001:db8::1/128"])
            .unwrap()
            .ipv6_prefix(32);
        let r = req_from("[2001:db8::2]", &["1.1.1.1"]);
        assert_eq!(x.extract(&r).unwrap(), ip("2001:db8::"));
        let r = req_from("[2001:db8::1]", &["1.1.1.1"]);
        assert_eq!(x.extract(&r).unwrap(), ip("1.1.1.1"));
        let peer = PeerIp.ipv6_prefix(DEFAULT_IPV6_PREFIX);
        let r = req_from("[2001:db8:0:7:1:2:3:4]", &[]);
        assert_eq!(peer.extract(&r).unwrap(), ip("2001:db8:0:7::"));
        assert_eq!(PeerIp.extract(&r).unwrap(), ip("2001:db8:0:7:1:2:3:4"));
        assert_eq!(PeerIp.ipv6_prefix(200).bits(), 128);
        assert_eq!(ipv6_prefix(ip("2001:db8::1"), 0), ip("::"));
    }

    #[test]
    fn forwarded_walks_from_the_right_and_skips_elements_without_for() {
        let x = ForwardedIp::parse(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardingHeader::Forwarded);
        // The client sent `proto=https` (no for=); the trusted proxy appended the client.
        let r = forwarded_req("10.0.0.1:1", &["proto=https", "for=203.0.113.9;proto=http"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        let r = forwarded_req("10.0.0.1:1", &["proto=https, for=203.0.113.9"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        // Quoted commas and semicolons do not split elements.
        let r = forwarded_req(
            "10.0.0.1:1",
            &[r#"for=6.6.6.6, by="x,for=1.1.1.1;y";for="203.0.113.9:1", for=10.0.0.5"#],
        );
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        // Garbage left of the client is never reached; garbage where the walk stops is 400.
        let r = forwarded_req(
            "10.0.0.1:1",
            &["for=junk, for=\"unterminated", "for=203.0.113.9"],
        );
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
        let r = forwarded_req("10.0.0.1:1", &["for=203.0.113.9, for=unknown"]);
        assert_eq!(
            x.extract(&r).unwrap_err(),
            KeyError::Invalid {
                what: "forwarded header"
            }
        );
        // A forged hop to the left stays unreached in X-Forwarded-For too.
        let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
        let r = req_from("10.0.0.1", &["not-an-ip, 203.0.113.9"]);
        assert_eq!(x.extract(&r).unwrap(), ip("203.0.113.9"));
    }

    #[test]
    fn bad_cidr_is_a_config_error() {
        let err = ForwardedIp::parse(["10.0.0.0/33"]).unwrap_err();
        assert_eq!(err.field(), "trusted_proxies[0]");
    }

    #[test]
    fn header_key_limits() {
        let k = HeaderKey::new(HeaderName::from_static("x-api-key")).max_len(4);
        let ok = Request::get("/")
            .header("x-api-key", " ab ")
            .body(())
            .unwrap();
        assert_eq!(k.extract(&ok).unwrap(), "ab");
        let long = Request::get("/")
            .header("x-api-key", "abcde")
            .body(())
            .unwrap();
        assert!(matches!(k.extract(&long), Err(KeyError::Invalid { .. })));
        let bin = Request::get("/")
            .header("x-api-key", http::HeaderValue::from_bytes(b"\xff").unwrap())
            .body(())
            .unwrap();
        assert!(matches!(k.extract(&bin), Err(KeyError::Invalid { .. })));
        assert!(matches!(
            k.extract(&Request::new(())),
            Err(KeyError::Missing { .. })
        ));
    }

    #[test]
    fn peer_path_global_tuple() {
        let r = req_from("127.0.0.1", &[]);
        assert_eq!(PeerIp.extract(&r).unwrap(), ip("127.0.0.1"));
        assert_eq!(PathKey.extract(&r).unwrap(), "/p");
        assert_eq!(
            (PeerIp, PathKey).extract(&r).unwrap(),
            (ip("127.0.0.1"), "/p".to_owned())
        );
        GlobalKey.extract(&r).unwrap();
        assert!(PeerIp.extract(&Request::new(())).is_err());
        let mut r = Request::new(());
        r.extensions_mut()
            .insert("[::1]:80".parse::<SocketAddr>().unwrap());
        assert_eq!(PeerIp.extract(&r).unwrap(), ip("::1"));
    }

    #[cfg(feature = "axum")]
    #[test]
    fn axum_connect_info_is_the_peer() {
        let mut r = Request::new(());
        r.extensions_mut().insert(axum::extract::ConnectInfo(
            "192.0.2.1:443".parse::<SocketAddr>().unwrap(),
        ));
        assert_eq!(PeerIp.extract(&r).unwrap(), ip("192.0.2.1"));
    }

    proptest! {
        // Whatever bytes a client puts in X-Forwarded-For, extraction never panics, and from
        // an untrusted peer the key is always the peer.
        #[test]
        fn never_panics_and_untrusted_is_peer(xff in proptest::collection::vec(any::<u8>(), 0..64)) {
            let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
            if let Ok(v) = http::HeaderValue::from_bytes(&xff) {
                let mut r = Request::get("/").header("x-forwarded-for", v.clone()).body(()).unwrap();
                r.extensions_mut().insert(PeerAddr("8.8.8.8:1".parse().unwrap()));
                prop_assert_eq!(x.extract(&r).unwrap(), ip("8.8.8.8"));
                let mut r = Request::get("/").header("x-forwarded-for", v.clone()).body(()).unwrap();
                r.extensions_mut().insert(PeerAddr("10.9.9.9:1".parse().unwrap()));
                let _ = x.extract(&r);
                let f = x.clone().header(ForwardingHeader::Forwarded);
                let mut r = Request::get("/").header("forwarded", v).body(()).unwrap();
                r.extensions_mut().insert(PeerAddr("10.9.9.9:1".parse().unwrap()));
                let _ = f.extract(&r);
            }
        }

        // Walking from the right: the key is the rightmost untrusted hop, whatever
        // garbage a client put to its left, and a client-sent element without `for=`
        // never makes it a 400.
        #[test]
        fn rightmost_untrusted_hop_whatever_is_left(
            garbage in "[ -~]{0,24}",
            client in any::<std::net::Ipv4Addr>(),
            proxies in proptest::collection::vec(0u8..255, 0..3),
        ) {
            prop_assume!(client.octets()[0] != 10);
            let x = ForwardedIp::parse(["10.0.0.0/8"]).unwrap();
            let chain: Vec<String> = proxies.iter().map(|p| format!("10.0.0.{p}")).collect();
            let mut xff = vec![garbage.replace(',', " "), client.to_string()];
            xff.extend(chain.iter().cloned());
            if let Ok(v) = http::HeaderValue::from_str(&xff.join(", ")) {
                let mut r = Request::get("/").header("x-forwarded-for", v).body(()).unwrap();
                r.extensions_mut().insert(PeerAddr("10.9.9.9:1".parse().unwrap()));
                prop_assert_eq!(x.extract(&r).unwrap(), IpAddr::V4(client));
            }
            let mut fwd = vec!["proto=https".to_owned(), format!("for={client}")];
            fwd.extend(chain.iter().map(|p| format!("for={p};by=\"_x,y\"")));
            let f = x.header(ForwardingHeader::Forwarded);
            let mut r = Request::get("/")
                .header("forwarded", fwd.join(", "))
                .body(())
                .unwrap();
            r.extensions_mut().insert(PeerAddr("[::ffff:10.9.9.9]:1".parse().unwrap()));
            prop_assert_eq!(f.extract(&r).unwrap(), IpAddr::V4(client));
        }
    }
}
