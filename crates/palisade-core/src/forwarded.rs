//! Parsers of the forwarding headers a proxy chain appends to: `X-Forwarded-For` and
//! RFC 7239 `Forwarded`, hop by hop, without allocating.
//!
//! [`ForwardedIp`](crate::key::ForwardedIp) uses them; they are public so that other code
//! (and the fuzz targets) can read the same hops the same way. Every input is untrusted:
//! nothing here panics, and a hop that is not an IP address comes out as
//! [`Hop::Malformed`], never as an error for the whole header.
//!
//! `Forwarded` is not an RFC 8941 structured field (its values are RFC 7230 tokens or
//! quoted-strings, and `for=` carries IPv6 literals in brackets, which structured fields
//! cannot express), so it is parsed here by hand rather than with `sfv`:
//!
//! ```text
//! Forwarded         = 1#forwarded-element
//! forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//! forwarded-pair    = token "=" value
//! value             = token / quoted-string        ; quoted-pair = "\" char
//! ```
//!
//! Commas and semicolons inside quoted strings do not split (`by="a,b"`); an element
//! without a `for=` parameter (e.g. `proto=https` alone) is not a hop and is skipped.
//!
//! ```
//! use palisade_core::forwarded::{Hop, forwarded_hops, x_forwarded_for_hops};
//! let hops: Vec<Hop> =
//!     forwarded_hops(r#"for=192.0.2.60;by="a,b", proto=https, for="[2001:db8::17]:4711""#).collect();
//! assert_eq!(hops, [Hop::Ip("192.0.2.60".parse().unwrap()), Hop::Ip("2001:db8::17".parse().unwrap())]);
//! let hops: Vec<Hop> = x_forwarded_for_hops("203.0.113.9, ::ffff:10.1.2.3, junk").collect();
//! assert_eq!(hops, [Hop::Ip("203.0.113.9".parse().unwrap()), Hop::Ip("10.1.2.3".parse().unwrap()), Hop::Malformed]);
//! ```

use std::net::{IpAddr, SocketAddr};

/// One hop of a forwarding header, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// An IP address (canonical: IPv4-mapped IPv6 addresses come out as IPv4).
    Ip(IpAddr),
    /// Not an IP address (garbage, `unknown`, an obfuscated `_name`, a repeated `for=`).
    Malformed,
}

/// The hops of one `X-Forwarded-For` line: comma-separated addresses, each optionally
/// with a port (`1.2.3.4:80`, `[2001:db8::1]:80`) or quoted. An empty item is malformed.
pub fn x_forwarded_for_hops(line: &str) -> impl Iterator<Item = Hop> + '_ {
    line.split(',')
        .map(|hop| match parse_node(hop.trim().as_bytes()) {
            Some(ip) => Hop::Ip(ip),
            None => Hop::Malformed,
        })
}

/// The `for=` hops of one RFC 7239 `Forwarded` line, left to right; elements without a
/// `for=` parameter are skipped.
pub fn forwarded_hops(line: &str) -> ForwardedHops<'_> {
    ForwardedHops {
        rest: line.as_bytes(),
    }
}

/// Iterator returned by [`forwarded_hops`].
#[derive(Debug, Clone)]
pub struct ForwardedHops<'a> {
    rest: &'a [u8],
}

/// The longest `for=` value (unescaped) worth looking at: `"[v6 with zone]:port"` fits.
const MAX_NODE: usize = 96;

impl Iterator for ForwardedHops<'_> {
    type Item = Hop;

    fn next(&mut self) -> Option<Hop> {
        while !self.rest.is_empty() {
            let (element, rest) = split_outside_quotes(self.rest, b',');
            self.rest = rest;
            if let Some(hop) = element_hop(element) {
                return Some(hop);
            }
        }
        None
    }
}

/// Splits at the first `sep` outside a quoted string: `(before, after)`; `after` is empty
/// when there is none. An unterminated quote runs to the end.
fn split_outside_quotes(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == sep {
            return (&s[..i], &s[i + 1..]);
        }
    }
    (s, &[])
}

/// The hop of one element: `None` without a `for=` pair.
fn element_hop(mut element: &[u8]) -> Option<Hop> {
    let mut found: Option<Hop> = None;
    while !element.is_empty() {
        let (pair, rest) = split_outside_quotes(element, b';');
        element = rest;
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        if !pair[..eq].trim_ascii().eq_ignore_ascii_case(b"for") {
            continue;
        }
        if found.is_some() {
            // RFC 7239 §4: a parameter MUST NOT occur more than once per element.
            return Some(Hop::Malformed);
        }
        found = Some(match for_value(pair[eq + 1..].trim_ascii()) {
            Some(ip) => Hop::Ip(ip),
            None => Hop::Malformed,
        });
    }
    found
}

/// A `for=` value: a token or a quoted string (unescaped into a stack buffer).
fn for_value(v: &[u8]) -> Option<IpAddr> {
    let Some(inner) = v.strip_prefix(b"\"") else {
        return parse_node(v);
    };
    let inner = inner.strip_suffix(b"\"")?;
    let mut buf = [0u8; MAX_NODE];
    let mut len = 0;
    let mut escaped = false;
    for &b in inner {
        if !escaped && b == b'\\' {
            escaped = true;
            continue;
        }
        if !escaped && b == b'"' {
            return None; // a quote inside the value: not one quoted string
        }
        escaped = false;
        *buf.get_mut(len)? = b;
        len += 1;
    }
    if escaped {
        return None;
    }
    parse_node(&buf[..len])
}

/// A node: `1.2.3.4`, `1.2.3.4:port`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:port`,
/// optionally in double quotes; the port may be anything (RFC 7239 obfuscated ports
/// included). The address comes out canonical (IPv4-mapped IPv6 as IPv4).
pub fn parse_node(node: &[u8]) -> Option<IpAddr> {
    let node = node.trim_ascii();
    let node = node
        .strip_prefix(b"\"")
        .and_then(|n| n.strip_suffix(b"\""))
        .unwrap_or(node);
    let s = std::str::from_utf8(node).ok()?;
    let ip = if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)?
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = s.parse::<SocketAddr>() {
        sa.ip()
    } else {
        // `1.2.3.4:_obfuscated`: an IPv4 address and any port.
        let (addr, _port) = s.split_once(':')?;
        addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)?
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> Hop {
        Hop::Ip(s.parse().unwrap())
    }

    #[test]
    fn rfc7239_examples() {
        // RFC 7239 §4 and §7.4 examples.
        let v: Vec<_> = forwarded_hops(r#"for="_gazonk""#).collect();
        assert_eq!(v, [Hop::Malformed]);
        let v: Vec<_> = forwarded_hops(r#"For="[2001:db8:cafe::17]:4711""#).collect();
        assert_eq!(v, [ip("2001:db8:cafe::17")]);
        let v: Vec<_> = forwarded_hops("for=192.0.2.60;proto=http;by=203.0.113.43").collect();
        assert_eq!(v, [ip("192.0.2.60")]);
        let v: Vec<_> = forwarded_hops("for=192.0.2.43, for=198.51.100.17").collect();
        assert_eq!(v, [ip("192.0.2.43"), ip("198.51.100.17")]);
        let v: Vec<_> = forwarded_hops("for=unknown, for=192.0.2.43:_port").collect();
        assert_eq!(v, [Hop::Malformed, ip("192.0.2.43")]);
    }

    #[test]
    fn quoted_commas_and_semicolons_do_not_split() {
        let v: Vec<_> =
            forwarded_hops(r#"by="x,y;z";for="198.51.100.1", host="a\",b";for=192.0.2.1"#)
                .collect();
        assert_eq!(v, [ip("198.51.100.1"), ip("192.0.2.1")]);
        // escaped characters inside the quoted value
        let v: Vec<_> = forwarded_hops(r#"for="\[2001:db8::1\]:80""#).collect();
        assert_eq!(v, [ip("2001:db8::1")]);
    }

    #[test]
    fn elements_without_for_are_skipped_and_bad_ones_are_hops() {
        let v: Vec<_> = forwarded_hops("proto=https, , ;;, for=192.0.2.1").collect();
        assert_eq!(v, [ip("192.0.2.1")]);
        let v: Vec<_> = forwarded_hops("for=1.2.3.4;for=5.6.7.8").collect();
        assert_eq!(v, [Hop::Malformed]);
        let v: Vec<_> = forwarded_hops(r#"for="1.2.3.4, for=5.6.7.8"#).collect();
        assert_eq!(v, [Hop::Malformed], "unterminated quote swallows the rest");
        let v: Vec<_> = forwarded_hops("for=").collect();
        assert_eq!(v, [Hop::Malformed]);
        let long = format!("for=\"{}\"", "1".repeat(200));
        assert_eq!(forwarded_hops(&long).collect::<Vec<_>>(), [Hop::Malformed]);
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        assert_eq!(
            parse_node(b"::ffff:10.1.2.3"),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(
            parse_node(b"[::ffff:10.1.2.3]:443"),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(parse_node(b"[::1]x"), None);
        assert_eq!(parse_node(b"1.2.3.4:80"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_node(b"\"1.2.3.4\""), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_node(b""), None);
    }

    /// A Forwarded element for `ip` in one of the forms RFC 7239 allows, with noise.
    fn element(ip: IpAddr, form: u8) -> String {
        match (ip, form % 4) {
            (IpAddr::V4(v4), 0) => format!("for={v4}"),
            (IpAddr::V4(v4), 1) => format!("proto=https;For=\"{v4}:8080\";by=\"a,b;c\""),
            (IpAddr::V6(v6), 0 | 1) => format!("for=\"[{v6}]\""),
            (ip, 2) => format!("host=\"x,y\";for=\"{}\"", SocketAddr::new(ip, 1)),
            (ip, _) => format!("by=_p; for=\"{}\" ;proto=http", SocketAddr::new(ip, 65535)),
        }
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let n = forwarded_hops(s).count();
                prop_assert!(n <= s.len());
                let _ = x_forwarded_for_hops(s).count();
            }
            let _ = parse_node(&bytes);
        }

        // What a proxy writes, the parser reads back: hops in order, canonical.
        #[test]
        fn round_trips(ips in proptest::collection::vec(any::<IpAddr>(), 1..6), form in any::<u8>(),
                       noise in proptest::collection::vec(0usize..6, 0..3)) {
            let mut elements: Vec<String> = ips.iter().enumerate()
                .map(|(i, ip)| element(*ip, form.wrapping_add(i as u8)))
                .collect();
            for n in noise {
                elements.insert(n.min(elements.len()), "proto=https".into());
            }
            let line = elements.join(", ");
            let got: Vec<Hop> = forwarded_hops(&line).collect();
            let want: Vec<Hop> = ips.iter().map(|ip| Hop::Ip(ip.to_canonical())).collect();
            prop_assert_eq!(got, want, "{}", line);
            let xff = ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let got: Vec<Hop> = x_forwarded_for_hops(&xff).collect();
            let want: Vec<Hop> = ips.iter().map(|ip| Hop::Ip(ip.to_canonical())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
