//! Parsing of received `RateLimit-Policy` / `RateLimit` fields (for clients reading an
//! upstream's limits). Malformed fields give `None` and must be ignored (draft §7).
//!
//! ```
//! use palisade_ratelimit::parse::parse_limit;
//! let items = parse_limit(br#""default";r=50;t=30"#).unwrap();
//! assert_eq!((items[0].name.as_str(), items[0].remaining, items[0].reset), ("default", 50, Some(30)));
//! assert!(parse_limit(br#""default";r=-1"#).is_none());
//! ```

/// One `RateLimit-Policy` Item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyItem {
    /// Policy name.
    pub name: String,
    /// `q`: the quota.
    pub quota: u64,
    /// `qu`: the quota unit (`"requests"` when absent).
    pub unit: Option<String>,
    /// `w`: the window in seconds.
    pub window: Option<u64>,
    /// `pk`: the partition key bytes.
    pub partition_key: Option<Vec<u8>>,
}

/// One `RateLimit` Item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitItem {
    /// Policy name.
    pub name: String,
    /// `r`: remaining units.
    pub remaining: u64,
    /// `t`: seconds until more quota is available.
    pub reset: Option<u64>,
    /// `pk`: the partition key bytes.
    pub partition_key: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Bare {
    Int(i64),
    Str(String),
    Token(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_sp(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn bare(&mut self) -> Option<Bare> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                let mut out = String::new();
                loop {
                    let c = self.peek()?;
                    self.i += 1;
                    match c {
                        b'\\' => {
                            let e = self.peek()?;
                            if e != b'"' && e != b'\\' {
                                return None;
                            }
                            out.push(e as char);
                            self.i += 1;
                        }
                        b'"' => return Some(Bare::Str(out)),
                        0x20..=0x7e => out.push(c as char),
                        _ => return None,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                if self.peek() == Some(b'-') {
                    self.i += 1;
                }
                let digits = self.i;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
                if self.i == digits || self.i - digits > 15 || self.peek() == Some(b'.') {
                    return None;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Bare::Int)
            }
            b':' => {
                self.i += 1;
                let start = self.i;
                while self.peek()? != b':' {
                    self.i += 1;
                }
                let b = base64(&self.s[start..self.i])?;
                self.i += 1;
                Some(Bare::Bytes(b))
            }
            b'?' => {
                self.i += 1;
                let v = match self.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                self.i += 1;
                Some(Bare::Bool(v))
            }
            c if c.is_ascii_alphabetic() || c == b'*' => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c))
                {
                    self.i += 1;
                }
                Some(Bare::Token(
                    String::from_utf8(self.s[start..self.i].to_vec()).ok()?,
                ))
            }
            _ => None,
        }
    }
    fn key(&mut self) -> Option<String> {
        let start = self.i;
        match self.peek()? {
            b'a'..=b'z' | b'*' => {}
            _ => return None,
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.i += 1;
        }
        String::from_utf8(self.s[start..self.i].to_vec()).ok()
    }
    /// A List of Items with parameters.
    fn list(&mut self) -> Option<Vec<(String, Vec<(String, Bare)>)>> {
        let mut out = Vec::new();
        self.skip_sp();
        loop {
            let (Bare::Str(name) | Bare::Token(name)) = self.bare()? else {
                return None;
            };
            let mut params = Vec::new();
            while self.peek() == Some(b';') {
                self.i += 1;
                self.skip_sp();
                let k = self.key()?;
                let v = if self.peek() == Some(b'=') {
                    self.i += 1;
                    self.bare()?
                } else {
                    Bare::Bool(true)
                };
                params.push((k, v));
            }
            out.push((name, params));
            self.skip_sp();
            match self.peek() {
                None => return (!out.is_empty()).then_some(out),
                Some(b',') => {
                    self.i += 1;
                    self.skip_sp();
                    self.peek()?; // a trailing comma is an error
                }
                Some(_) => return None,
            }
        }
    }
}

fn base64(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn non_negative(v: &Bare) -> Option<u64> {
    match v {
        Bare::Int(i) if *i >= 0 => Some(*i as u64),
        _ => None,
    }
}

/// Parses a `RateLimit-Policy` field (lines combined with `", "`); `None` if malformed.
pub fn parse_policy(value: &[u8]) -> Option<Vec<PolicyItem>> {
    let list = Parser { s: value, i: 0 }.list()?;
    list.into_iter()
        .map(|(name, params)| {
            let mut item = PolicyItem {
                name,
                quota: 0,
                unit: None,
                window: None,
                partition_key: None,
            };
            let mut has_q = false;
            for (k, v) in params {
                match (k.as_str(), v) {
                    ("q", v) => {
                        item.quota = non_negative(&v)?;
                        has_q = true;
                    }
                    ("qu", Bare::Str(u)) => item.unit = Some(u),
                    ("w", v) => item.window = Some(non_negative(&v).filter(|w| *w > 0)?),
                    ("pk", Bare::Bytes(b)) => item.partition_key = Some(b),
                    ("qu" | "pk", _) => return None,
                    _ => {} // unknown parameters are comments
                }
            }
            has_q.then_some(item)
        })
        .collect()
}

/// Parses a `RateLimit` field (lines combined with `", "`); `None` if malformed.
pub fn parse_limit(value: &[u8]) -> Option<Vec<LimitItem>> {
    let list = Parser { s: value, i: 0 }.list()?;
    list.into_iter()
        .map(|(name, params)| {
            let mut item = LimitItem {
                name,
                remaining: 0,
                reset: None,
                partition_key: None,
            };
            let mut has_r = false;
            for (k, v) in params {
                match (k.as_str(), v) {
                    ("r", v) => {
                        item.remaining = non_negative(&v)?;
                        has_r = true;
                    }
                    ("t", v) => item.reset = Some(non_negative(&v)?),
                    ("pk", Bare::Bytes(b)) => item.partition_key = Some(b),
                    ("pk", _) => return None,
                    _ => {}
                }
            }
            has_r.then_some(item)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parse_vectors() {
        let p = parse_policy(br#""burst";q=100;w=60,"daily";q=1000;w=86400"#).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].quota, p[0].window),
            ("burst", 100, Some(60))
        );
        assert_eq!(
            (p[1].name.as_str(), p[1].quota, p[1].window),
            ("daily", 1000, Some(86_400))
        );

        let p = parse_policy(br#""peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:"#)
            .unwrap();
        assert_eq!(p[0].quota, 65_535);
        assert_eq!(p[0].unit.as_deref(), Some("content-bytes"));
        assert_eq!(p[0].window, Some(10));
        assert_eq!(
            p[0].partition_key.as_deref(),
            Some(&[0xb1, 0xd7, 0xe3, 0x2c, 0x95, 0x0e, 0x50][..])
        );

        let l = parse_limit(br#""default";r=50;t=30"#).unwrap();
        assert_eq!(
            l,
            vec![LimitItem {
                name: "default".into(),
                remaining: 50,
                reset: Some(30),
                partition_key: None
            }]
        );
        assert!(parse_limit(br#""default";r=-1"#).is_none());
        let l = parse_limit(b"default;r=5").unwrap();
        assert_eq!((l[0].name.as_str(), l[0].remaining), ("default", 5));
    }

    #[test]
    fn malformed_fields_are_rejected() {
        for bad in [
            &b""[..],
            b"\"a\";r=1,",
            b"\"a\";q=1",
            b"\"a\";r=1.5",
            b"\"a;r=1",
            b"\"a\";r=1 x",
            b"\"a\";r=1234567890123456",
            b"\"a\";r=\"1\"",
        ] {
            assert!(
                parse_limit(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_policy(b"\"a\";w=60").is_none(), "q is required");
        assert!(parse_policy(b"\"a\";q=1;w=0").is_none(), "w > 0");
    }

    #[test]
    fn round_trips_our_own_output() {
        let set = crate::QuotaSet::new([
            crate::Quota::per_second("s", 10).unwrap().burst(3),
            crate::Quota::per_hour("h\"x", 1000).unwrap(),
        ])
        .unwrap();
        let p = parse_policy(set.policy_header().as_bytes()).unwrap();
        assert_eq!(p[0].name, "s");
        assert_eq!(p[1].name, "h\"x");
        assert_eq!(p[1].window, Some(3600));
    }

    proptest::proptest! {
        // Whatever a server sends, parsing never panics.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            let _ = parse_policy(&bytes);
            let _ = parse_limit(&bytes);
        }

        // Our own RateLimit-Policy, for any names and numbers, parses back to them.
        #[test]
        fn policy_round_trips(quotas in proptest::collection::vec(
            ("[ -~]{1,12}", 1u32..1_000_000, 1u64..86_400), 1..=crate::quota::MAX_QUOTAS)) {
            let mut names = std::collections::HashSet::new();
            let quotas: Vec<_> = quotas.into_iter().filter(|(n, ..)| names.insert(n.clone())).collect();
            let set = crate::QuotaSet::new(quotas.iter().map(|(name, limit, secs)| {
                crate::Quota::new(name, *limit, std::time::Duration::from_secs(*secs)).unwrap()
            }))
            .unwrap();
            let parsed = parse_policy(set.policy_header().as_bytes()).unwrap();
            proptest::prop_assert_eq!(parsed.len(), quotas.len());
            for (p, (name, limit, secs)) in parsed.iter().zip(&quotas) {
                proptest::prop_assert_eq!(&p.name, name);
                proptest::prop_assert_eq!(p.quota, u64::from(*limit));
                proptest::prop_assert_eq!(p.window, Some(*secs));
            }
        }
    }
}
