//! Envoy-compatible fault headers: the caller names the fault.
//!
//! | header | value | fault |
//! |---|---|---|
//! | `x-envoy-fault-delay-request` | whole milliseconds | delay |
//! | `x-envoy-fault-abort-request` | HTTP status in `[200, 600)` | abort |
//! | `x-envoy-fault-abort-grpc-request` | gRPC code `0`–`16` | abort (HTTP 200, `grpc-status`) |
//! | `x-envoy-fault-throughput-response` | KiB per second, > 0 | response bandwidth limit |
//! | `…-percentage` of each | integer numerator of 100 | share of such requests faulted |
//!
//! As in Envoy: a `-percentage` header counts only with its fault header; it is capped by
//! the configured maximum ([`HeaderControl::max_percentage`], default 100), and without it
//! the maximum applies; when both abort headers are present the HTTP one wins. Unlike
//! Envoy, gRPC codes above 16 are ignored (they cannot be rendered), and delays are capped at
//! [`HeaderControl::max_delay`]. A malformed value is ignored and reported as
//! [`FaultEvent::InvalidHeader`]; it never fails the
//! request.
//!
//! Header control is off unless [`FaultLayer::header_control`](crate::FaultLayer::header_control)
//! is set, and should be limited to trusted peers ([`HeaderControl::trusted_peers`]) when
//! untrusted clients can reach the service.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, StatusCode};
use ipnet::IpNet;
use palisade_core::key::{KeyExtractor, PeerIp};
use palisade_core::{ConfigError, GrpcCode, Listeners, RequestParts};

use crate::events::FaultEvent;
use crate::fault::{AbortWith, MAX_DELAY, Plan};
use crate::rng::{Chance, Draws};

/// `x-envoy-fault-delay-request`: delay in milliseconds.
pub const DELAY_REQUEST: HeaderName = HeaderName::from_static("x-envoy-fault-delay-request");
/// `x-envoy-fault-delay-request-percentage`.
pub const DELAY_REQUEST_PERCENTAGE: HeaderName =
    HeaderName::from_static("x-envoy-fault-delay-request-percentage");
/// `x-envoy-fault-abort-request`: HTTP status to abort with.
pub const ABORT_REQUEST: HeaderName = HeaderName::from_static("x-envoy-fault-abort-request");
/// `x-envoy-fault-abort-grpc-request`: gRPC code to abort with.
pub const ABORT_GRPC_REQUEST: HeaderName =
    HeaderName::from_static("x-envoy-fault-abort-grpc-request");
/// `x-envoy-fault-abort-request-percentage`.
pub const ABORT_REQUEST_PERCENTAGE: HeaderName =
    HeaderName::from_static("x-envoy-fault-abort-request-percentage");
/// `x-envoy-fault-throughput-response`: response bandwidth in KiB/s.
pub const THROUGHPUT_RESPONSE: HeaderName =
    HeaderName::from_static("x-envoy-fault-throughput-response");
/// `x-envoy-fault-throughput-response-percentage`.
pub const THROUGHPUT_RESPONSE_PERCENTAGE: HeaderName =
    HeaderName::from_static("x-envoy-fault-throughput-response-percentage");

/// Which faults of a plan came from headers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FromHeaders {
    pub(crate) delay: bool,
    pub(crate) abort: bool,
    pub(crate) throttle: bool,
}

/// Settings of Envoy fault-header control (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct HeaderControl {
    trusted: Option<Arc<[IpNet]>>,
    max_delay: Duration,
    max_percentage: u8,
}

impl Default for HeaderControl {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderControl {
    /// Honours fault headers from any peer, up to 100 %, with delays up to one hour.
    pub fn new() -> Self {
        Self {
            trusted: None,
            max_delay: MAX_DELAY,
            max_percentage: 100,
        }
    }

    /// Honours fault headers only from peers in these networks (the connection's peer
    /// address, as core's `PeerIp` reads it; a request without one is not trusted).
    #[must_use]
    pub fn trusted_peers(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted = Some(nets.into_iter().collect());
        self
    }

    /// [`trusted_peers`](Self::trusted_peers) from CIDR strings, naming a bad one.
    pub fn parse_trusted_peers<I, S>(self, cidrs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = palisade_core::key::parse_cidrs("trusted_peers", cidrs)?;
        Ok(self.trusted_peers(nets))
    }

    /// The longest delay a header may ask for (default and at most one hour).
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max.min(MAX_DELAY);
        self
    }

    /// The largest share of requests a header may fault, in percent (default 100; clamped
    /// to 100). Also the share used when no `-percentage` header is sent.
    #[must_use]
    pub fn max_percentage(mut self, percent: u8) -> Self {
        self.max_percentage = percent.min(100);
        self
    }

    fn trusts<R: RequestParts + ?Sized>(&self, req: &R) -> bool {
        match &self.trusted {
            None => true,
            Some(nets) => PeerIp
                .extract(req)
                .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        }
    }

    /// Reads the fault headers into `plan`.
    pub(crate) fn apply<R: RequestParts + ?Sized>(
        &self,
        req: &R,
        rng: &mut Draws<'_>,
        plan: &mut Plan,
        listeners: &Listeners<FaultEvent>,
    ) -> FromHeaders {
        let mut from = FromHeaders::default();
        let headers = req.headers();
        if headers.is_empty() || !self.trusts(req) {
            return from;
        }
        let cap = Chance::fraction(u64::from(self.max_percentage), 100);
        let chance = |name: &HeaderName, header: &'static str| match headers.get(name) {
            None => cap,
            Some(v) => {
                if let Some(n) = parse_u64(v.as_bytes()) {
                    Chance::fraction(n, 100).min(cap)
                } else {
                    listeners.emit_named(|instance| FaultEvent::InvalidHeader { instance, header });
                    Chance::NEVER
                }
            }
        };

        if let Some(ms) = number(headers, &DELAY_REQUEST, listeners) {
            let delay = Duration::from_millis(ms).min(self.max_delay);
            if chance(
                &DELAY_REQUEST_PERCENTAGE,
                "x-envoy-fault-delay-request-percentage",
            )
            .fires(rng)
            {
                plan.delay = Some(delay);
                from.delay = true;
            }
        }

        let abort = match number(headers, &ABORT_REQUEST, listeners) {
            Some(n) if (200..600).contains(&n) => {
                StatusCode::from_u16(n as u16).ok().map(AbortWith::Http)
            }
            Some(_) => {
                listeners.emit_named(|instance| FaultEvent::InvalidHeader {
                    instance,
                    header: "x-envoy-fault-abort-request",
                });
                None
            }
            None => match number(headers, &ABORT_GRPC_REQUEST, listeners) {
                Some(n) => {
                    let code = u32::try_from(n).ok().and_then(GrpcCode::from_u32);
                    if code.is_none() {
                        listeners.emit_named(|instance| FaultEvent::InvalidHeader {
                            instance,
                            header: "x-envoy-fault-abort-grpc-request",
                        });
                    }
                    code.map(AbortWith::Grpc)
                }
                None => None,
            },
        };
        if let Some(with) = abort
            && chance(
                &ABORT_REQUEST_PERCENTAGE,
                "x-envoy-fault-abort-request-percentage",
            )
            .fires(rng)
        {
            plan.abort = Some(with);
            from.abort = true;
        }

        if let Some(kib) = number(headers, &THROUGHPUT_RESPONSE, listeners) {
            match NonZeroU64::new(kib.saturating_mul(1024)) {
                Some(rate) => {
                    if chance(
                        &THROUGHPUT_RESPONSE_PERCENTAGE,
                        "x-envoy-fault-throughput-response-percentage",
                    )
                    .fires(rng)
                    {
                        plan.throttle = Some(rate);
                        from.throttle = true;
                    }
                }
                None => listeners.emit_named(|instance| FaultEvent::InvalidHeader {
                    instance,
                    header: "x-envoy-fault-throughput-response",
                }),
            }
        }
        from
    }
}

/// The header's value as a number; a malformed one is reported and ignored.
fn number(
    headers: &HeaderMap,
    name: &HeaderName,
    listeners: &Listeners<FaultEvent>,
) -> Option<u64> {
    let v = headers.get(name)?;
    let n = parse_u64(v.as_bytes());
    if n.is_none() {
        let header: &'static str = match name.as_str() {
            "x-envoy-fault-delay-request" => "x-envoy-fault-delay-request",
            "x-envoy-fault-abort-request" => "x-envoy-fault-abort-request",
            "x-envoy-fault-abort-grpc-request" => "x-envoy-fault-abort-grpc-request",
            _ => "x-envoy-fault-throughput-response",
        };
        listeners.emit_named(|instance| FaultEvent::InvalidHeader { instance, header });
    }
    n
}

/// ASCII digits only, at most 18 of them (no overflow).
fn parse_u64(b: &[u8]) -> Option<u64> {
    let b = b.trim_ascii();
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_plain_digits() {
        assert_eq!(parse_u64(b"250"), Some(250));
        assert_eq!(parse_u64(b" 7 "), Some(7));
        for bad in [&b""[..], b"-1", b"1e3", b"12ms", b"9999999999999999999999"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        let e = HeaderControl::new()
            .parse_trusted_peers(["10.0.0.0/8", "nope"])
            .unwrap_err();
        assert_eq!(e.field(), "trusted_peers[1]");
    }
}
