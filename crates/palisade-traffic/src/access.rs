//! Who may pick an arm by hand with the override header or cookie.

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, Request};
use ipnet::IpNet;
use palisade_core::ConfigError;
use palisade_core::key::{KeyExtractor, PeerIp};

/// Shortest accepted [`OverrideAccess::secret`], in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest accepted [`OverrideAccess::secret`], in bytes.
pub const MAX_SECRET_LEN: usize = 256;

/// Who may route a request by hand with the override header or cookie
/// ([`SplitBuilder::override_header`](crate::SplitBuilder::override_header)).
///
/// Any client can send a header or a cookie, and a request routed by hand picks an arm
/// regardless of its weight: an open override lets anyone put all their traffic on the
/// canary (to reach an unfinished version) or off it. So an override must say who may use
/// it, or [`build`](crate::SplitBuilder::build) refuses it: a shared secret sent in another
/// header (for testers and internal tools), a list of trusted peer networks (the TCP peer,
/// see [`PeerAddr`](palisade_core::key::PeerAddr)), or explicitly
/// [`anyone`](Self::anyone) (only behind an edge proxy that strips the override from public
/// traffic). A request that may not use it is routed as if it had none.
///
/// Requests routed by an override are never counted in the per-arm statistics that
/// [`CanaryController`](crate::CanaryController) analyses, whoever sent them.
#[derive(Clone)]
#[non_exhaustive]
pub enum OverrideAccess {
    /// Requests whose header `header` holds exactly `secret` (compared in constant time).
    Secret {
        /// The header carrying the secret.
        header: HeaderName,
        /// The shared secret.
        secret: Arc<[u8]>,
    },
    /// Requests whose TCP peer is inside one of these networks (IPv4-mapped IPv6 peers
    /// count as IPv4).
    TrustedPeers(Arc<[IpNet]>),
    /// Anyone: no restriction.
    Anyone,
}

impl fmt::Debug for OverrideAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret { header, .. } => f
                .debug_struct("Secret")
                .field("header", header)
                .finish_non_exhaustive(),
            Self::TrustedPeers(nets) => f.debug_tuple("TrustedPeers").field(nets).finish(),
            Self::Anyone => f.write_str("Anyone"),
        }
    }
}

impl OverrideAccess {
    /// Requests carrying `secret` in `header`. The secret must be 16 to 256 bytes.
    ///
    /// # Errors
    /// A shorter or longer secret, naming `override_access.secret`.
    pub fn secret(header: HeaderName, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(ConfigError::new(
                "override_access.secret",
                format!(
                    "must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes (got {})",
                    secret.len()
                ),
            ));
        }
        Ok(Self::Secret {
            header,
            secret: secret.into(),
        })
    }

    /// Requests whose TCP peer is inside one of `cidrs` (`"10.0.0.0/8"`; a bare address
    /// means one host).
    ///
    /// # Errors
    /// An unparsable entry (named `override_access.cidrs[i]`), or an empty list.
    pub fn trusted_peers<I, S>(cidrs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = palisade_core::key::parse_cidrs("override_access.cidrs", cidrs)?;
        if nets.is_empty() {
            return Err(ConfigError::new(
                "override_access.cidrs",
                "must list at least one network",
            ));
        }
        Ok(Self::TrustedPeers(nets.into()))
    }

    /// No restriction: anyone may pick the arm. Use it only behind an edge that strips the
    /// override header and cookie from public traffic.
    pub fn anyone() -> Self {
        Self::Anyone
    }

    /// Whether `req` may use the override.
    pub fn allows<B>(&self, req: &Request<B>) -> bool {
        match self {
            Self::Anyone => true,
            Self::Secret { header, secret } => req
                .headers()
                .get(header)
                .is_some_and(|v| constant_time_eq(v.as_bytes(), secret)),
            Self::TrustedPeers(nets) => PeerIp
                .extract(req)
                .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        }
    }
}

/// Equal contents, in time independent of where they differ (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::key::PeerAddr;

    #[test]
    fn secret_and_peers() {
        let name = HeaderName::from_static("x-override-token");
        assert_eq!(
            OverrideAccess::secret(name.clone(), "short")
                .unwrap_err()
                .field(),
            "override_access.secret"
        );
        let a = OverrideAccess::secret(name, "0123456789abcdef").unwrap();
        let with = |v: &str| {
            Request::get("/")
                .header("x-override-token", v)
                .body(())
                .unwrap()
        };
        assert!(a.allows(&with("0123456789abcdef")));
        assert!(!a.allows(&with("0123456789abcdeX")));
        assert!(!a.allows(&with("0123456789abcde")));
        assert!(!a.allows(&Request::new(())));
        assert!(!format!("{a:?}").contains("0123"));

        let p = OverrideAccess::trusted_peers(["10.0.0.0/8", "::1"]).unwrap();
        let from = |peer: &str| {
            let mut r = Request::new(());
            r.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
            r
        };
        assert!(p.allows(&from("10.1.2.3:1")));
        assert!(p.allows(&from("[::ffff:10.1.2.3]:1")));
        assert!(p.allows(&from("[::1]:1")));
        assert!(!p.allows(&from("192.0.2.1:1")));
        assert!(!p.allows(&Request::new(())));
        assert_eq!(
            OverrideAccess::trusted_peers(["nope"]).unwrap_err().field(),
            "override_access.cidrs[0]"
        );
        assert!(OverrideAccess::trusted_peers(Vec::<String>::new()).is_err());
        assert!(OverrideAccess::anyone().allows(&Request::new(())));
    }
}
