//! The value format of [`RedisStore`](super::RedisStore), version 1 (see the module docs).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use crate::directives::{Delta, ResponseDirectives};
use crate::freshness::Clock;
use crate::store::{Entry, StoredResponse};

const MAGIC: &[u8; 4] = b"PCv1";

fn millis_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn version_code(v: Version) -> u8 {
    match v {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => 2,
    }
}

fn version_of(code: u8) -> Option<Version> {
    Some(match code {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_11,
        3 => Version::HTTP_2,
        4 => Version::HTTP_3,
        _ => return None,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        // Lengths past u32 cannot occur: values are capped far below 4 GiB.
        self.0
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(b);
    }
    fn delta(&mut self, d: Delta) {
        match d {
            Delta::Absent => self.u8(0),
            Delta::Invalid => self.u8(1),
            Delta::Seconds(s) => {
                self.u8(2);
                self.u64(s);
            }
        }
    }
    fn opt(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.u64(s);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn delta(&mut self) -> Option<Delta> {
        Some(match self.u8()? {
            0 => Delta::Absent,
            1 => Delta::Invalid,
            2 => Delta::Seconds(self.u64()?),
            _ => return None,
        })
    }
    #[allow(clippy::option_option)] // outer: decodable; inner: present
    fn opt(&mut self) -> Option<Option<u64>> {
        Some(match self.u8()? {
            0 => None,
            1 => Some(self.u64()?),
            _ => return None,
        })
    }
}

const FLAGS: usize = 9;

fn flags(d: &ResponseDirectives) -> [bool; FLAGS] {
    [
        d.no_store,
        d.no_cache,
        d.private,
        d.public,
        d.must_revalidate,
        d.proxy_revalidate,
        d.must_understand,
        d.no_transform,
        d.immutable,
    ]
}

/// The stored form of `entry`.
pub(super) fn encode(entry: &Entry, clock: &Clock) -> Vec<u8> {
    let body: usize = entry.variants.iter().map(|v| v.body.len() + 256).sum();
    let mut w = Writer(Vec::with_capacity(entry.key.len() + body + 16));
    w.0.extend_from_slice(MAGIC);
    w.bytes(entry.key.as_bytes());
    w.u8(u8::try_from(entry.variants.len()).unwrap_or(u8::MAX));
    for v in entry.variants.iter().take(usize::from(u8::MAX)) {
        w.u16(v.status.as_u16());
        w.u8(version_code(v.version));
        w.u64(millis_since_epoch(clock.wall(v.response_time)));
        w.u64(u64::try_from(v.initial_age.as_millis()).unwrap_or(u64::MAX));
        w.u64(u64::try_from(v.lifetime.as_millis()).unwrap_or(u64::MAX));
        let d = &v.directives;
        let mut bits = 0u16;
        for (i, on) in flags(d).into_iter().enumerate() {
            bits |= u16::from(on) << i;
        }
        w.u16(bits);
        w.delta(d.max_age);
        w.delta(d.s_maxage);
        w.opt(d.stale_while_revalidate);
        w.opt(d.stale_if_error);
        w.0.extend_from_slice(
            &u32::try_from(v.headers.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for (name, value) in &v.headers {
            w.bytes(name.as_str().as_bytes());
            w.bytes(value.as_bytes());
        }
        w.u16(u16::try_from(v.vary.len()).unwrap_or(u16::MAX));
        for (name, value) in v.vary.iter().take(usize::from(u16::MAX)) {
            w.bytes(name.as_str().as_bytes());
            match value {
                None => w.u8(0),
                Some(s) => {
                    w.u8(1);
                    w.bytes(s.as_bytes());
                }
            }
        }
        w.bytes(&v.body);
    }
    w.0
}

/// The entry stored as `input`, or `None` when it does not decode.
pub(super) fn decode(input: &[u8], clock: &Clock) -> Option<Entry> {
    let mut r = Reader(input);
    if r.take(4)? != MAGIC {
        return None;
    }
    let key: Box<str> = std::str::from_utf8(r.bytes()?).ok()?.into();
    let count = r.u8()?;
    let mut variants = Vec::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let status = StatusCode::from_u16(r.u16()?).ok()?;
        let version = version_of(r.u8()?)?;
        let wall = UNIX_EPOCH.checked_add(Duration::from_millis(r.u64()?))?;
        let response_time = clock.instant(wall)?;
        let initial_age = Duration::from_millis(r.u64()?);
        let lifetime = Duration::from_millis(r.u64()?);
        let bits = r.u16()?;
        let on = |i: u16| bits & (1 << i) != 0;
        let directives = ResponseDirectives {
            no_store: on(0),
            no_cache: on(1),
            private: on(2),
            public: on(3),
            must_revalidate: on(4),
            proxy_revalidate: on(5),
            must_understand: on(6),
            no_transform: on(7),
            immutable: on(8),
            max_age: r.delta()?,
            s_maxage: r.delta()?,
            stale_while_revalidate: r.opt()?,
            stale_if_error: r.opt()?,
        };
        let n = r.u32()? as usize;
        let mut headers = HeaderMap::with_capacity(n.min(1024));
        for _ in 0..n {
            let name = HeaderName::from_bytes(r.bytes()?).ok()?;
            let value = HeaderValue::from_bytes(r.bytes()?).ok()?;
            headers.append(name, value);
        }
        let n = r.u16()?;
        let mut vary = Vec::with_capacity(usize::from(n).min(64));
        for _ in 0..n {
            let name = HeaderName::from_bytes(r.bytes()?).ok()?;
            let value = match r.u8()? {
                0 => None,
                1 => Some(std::str::from_utf8(r.bytes()?).ok()?.into()),
                _ => return None,
            };
            vary.push((name, value));
        }
        let body = Bytes::copy_from_slice(r.bytes()?);
        variants.push(Arc::new(StoredResponse {
            status,
            version,
            headers,
            body,
            vary: vary.into_boxed_slice(),
            response_time,
            initial_age,
            lifetime,
            directives,
        }));
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Entry { key, variants })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(clock: &Clock) -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cache-control",
            HeaderValue::from_static("max-age=60, stale-if-error=30"),
        );
        headers.append("x-custom", HeaderValue::from_static("a"));
        headers.append("x-custom", HeaderValue::from_static("b"));
        let v = StoredResponse {
            status: StatusCode::NON_AUTHORITATIVE_INFORMATION,
            version: Version::HTTP_2,
            headers,
            body: Bytes::from_static(b"hello"),
            vary: vec![
                (
                    HeaderName::from_static("accept-language"),
                    Some("en".into()),
                ),
                (HeaderName::from_static("accept"), None),
            ]
            .into_boxed_slice(),
            response_time: clock.now(),
            initial_age: Duration::from_secs(3),
            lifetime: Duration::from_secs(60),
            directives: ResponseDirectives {
                max_age: Delta::Seconds(60),
                s_maxage: Delta::Invalid,
                public: true,
                immutable: true,
                stale_if_error: Some(30),
                ..ResponseDirectives::default()
            },
        };
        Entry {
            key: "example.com/a?b".into(),
            variants: vec![Arc::new(v)],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn round_trips_every_field() {
        let clock = Clock::anchored(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let e = entry(&clock);
        let bytes = encode(&e, &clock);
        tokio::time::advance(Duration::from_secs(7)).await;
        let d = decode(&bytes, &clock).expect("decodes");
        assert_eq!(d.key, e.key);
        let (a, b) = (&d.variants[0], &e.variants[0]);
        assert_eq!(
            (
                a.status,
                a.version,
                &a.headers,
                &a.body,
                &a.vary,
                a.response_time
            ),
            (
                b.status,
                b.version,
                &b.headers,
                &b.body,
                &b.vary,
                b.response_time
            )
        );
        assert_eq!(
            (a.initial_age, a.lifetime, &a.directives),
            (b.initial_age, b.lifetime, &b.directives)
        );
        assert_eq!(a.current_age(clock.now()), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn truncated_or_foreign_values_are_misses() {
        let clock = Clock::new();
        let bytes = encode(&entry(&clock), &clock);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n], &clock).is_none(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &clock).is_none());
        let mut other = bytes;
        other[3] = b'2';
        assert!(decode(&other, &clock).is_none());
        assert!(decode(&[0xff; 64], &clock).is_none());
    }
}
