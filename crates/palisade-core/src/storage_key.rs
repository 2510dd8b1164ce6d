//! Storage keys: the one escaped, documented and stable encoding of every key Palisade
//! writes to a shared store (Redis), never a `Debug` string.
//!
//! A storage key is a list of *segments* joined by `:`. Each segment is percent-encoded:
//! every byte other than an ASCII letter, digit, `-`, `.` or `~` is written `%XX` (two
//! uppercase hex digits), `_` included. So `:`, `{`, `}`, `%`, `_`, spaces, quotes, control
//! bytes and non-ASCII text never appear raw: a segment cannot run into its neighbour, two
//! different values never share an encoding, and a Redis Cluster hash tag `{…}` only ever
//! appears where the store puts it. An empty segment is written `_`, which no non-empty
//! value encodes to (a hash tag `{}` would be ignored by Redis Cluster).
//!
//! Values encode as:
//!
//! | value | segment(s) |
//! |---|---|
//! | `str` / `String` / `Arc<str>` | the UTF-8 bytes, escaped: `"a:b c"` → `a%3Ab%20c` |
//! | `IpAddr` | its canonical text (IPv4-mapped IPv6 as IPv4), escaped: `2001%3Adb8%3A%3A1` |
//! | integers, `bool` | decimal / `true` `false` |
//! | `()` (one global key) | `_` |
//! | `(A, B)`, `(A, B, C)` | the parts' segments joined by `:` |
//!
//! This is part of the stored data's format: it does not change between versions (a change
//! would split every bucket in two during a rolling upgrade). Store-specific layouts (which
//! segments, in which order) are documented by each store, e.g. the rate limiter's
//! `<prefix><layer>:{<key>}:<policy>`.
//!
//! ```
//! use palisade_core::storage_key::{StorageKey, push_segment};
//! let mut k = String::from("palisade:rl:");
//! push_segment(&mut k, "checkout");
//! k.push_str(":{");
//! ("tenant a", "x-1").write_storage_key(&mut k);
//! k.push('}');
//! assert_eq!(k, "palisade:rl:checkout:{tenant%20a:x-1}");
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `segment`, escaped (see the [module docs](self)); an empty one as `_`.
pub fn push_segment(out: &mut String, segment: &str) {
    push_segment_bytes(out, segment.as_bytes());
}

/// Appends arbitrary bytes as one escaped segment; an empty one as `_`.
pub fn push_segment_bytes(out: &mut String, segment: &[u8]) {
    if segment.is_empty() {
        out.push('_');
        return;
    }
    out.reserve(segment.len());
    for &b in segment {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The segments of `value` as a new `String` (see [`StorageKey`]).
pub fn encode<K: StorageKey + ?Sized>(value: &K) -> String {
    let mut out = String::new();
    value.write_storage_key(&mut out);
    out
}

/// A key value with a storage encoding (see the [module docs](self)).
///
/// Implement it for a key type of your own by writing its parts with [`push_segment`],
/// separated by `:`.
pub trait StorageKey {
    /// Appends this value's escaped segment(s) to `out`.
    fn write_storage_key(&self, out: &mut String);
}

impl<T: StorageKey + ?Sized> StorageKey for &T {
    fn write_storage_key(&self, out: &mut String) {
        (**self).write_storage_key(out);
    }
}

impl StorageKey for str {
    fn write_storage_key(&self, out: &mut String) {
        push_segment(out, self);
    }
}

impl StorageKey for String {
    fn write_storage_key(&self, out: &mut String) {
        push_segment(out, self);
    }
}

impl StorageKey for Arc<str> {
    fn write_storage_key(&self, out: &mut String) {
        push_segment(out, self);
    }
}

impl StorageKey for Box<str> {
    fn write_storage_key(&self, out: &mut String) {
        push_segment(out, self);
    }
}

impl StorageKey for [u8] {
    fn write_storage_key(&self, out: &mut String) {
        push_segment_bytes(out, self);
    }
}

impl StorageKey for Vec<u8> {
    fn write_storage_key(&self, out: &mut String) {
        push_segment_bytes(out, self);
    }
}

impl StorageKey for IpAddr {
    fn write_storage_key(&self, out: &mut String) {
        // An IP address's text is at most 45 bytes: format on the stack.
        let mut buf = StackStr::<48>::new();
        let _ = write!(buf, "{}", self.to_canonical());
        push_segment(out, buf.as_str());
    }
}

impl StorageKey for () {
    fn write_storage_key(&self, out: &mut String) {
        out.push('_');
    }
}

impl StorageKey for bool {
    fn write_storage_key(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl StorageKey for $t {
            fn write_storage_key(&self, out: &mut String) {
                // Decimal digits and `-` need no escaping.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
int_keys!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

impl<A: StorageKey, B: StorageKey> StorageKey for (A, B) {
    fn write_storage_key(&self, out: &mut String) {
        self.0.write_storage_key(out);
        out.push(':');
        self.1.write_storage_key(out);
    }
}

impl<A: StorageKey, B: StorageKey, C: StorageKey> StorageKey for (A, B, C) {
    fn write_storage_key(&self, out: &mut String) {
        self.0.write_storage_key(out);
        out.push(':');
        self.1.write_storage_key(out);
        out.push(':');
        self.2.write_storage_key(out);
    }
}

/// A fixed-capacity string on the stack (text beyond `N` bytes is cut off).
struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse of one segment's escaping (tests only).
    fn decode(seg: &str) -> Vec<u8> {
        if seg == "_" {
            return Vec::new();
        }
        let b = seg.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&seg[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn vectors() {
        assert_eq!(encode("abc-1.2~Z"), "abc-1.2~Z");
        assert_eq!(encode("a:b c"), "a%3Ab%20c");
        assert_eq!(encode("{x}_%\"é"), "%7Bx%7D%5F%25%22%C3%A9");
        assert_eq!(encode(""), "_");
        assert_eq!(encode(&()), "_");
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(encode(&ip), "2001%3Adb8%3A%3A1");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(encode(&mapped), "10.1.2.3");
        assert_eq!(encode(&("a:b", "c")), "a%3Ab:c");
        assert_eq!(encode(&("a", "b:c")), "a:b%3Ac");
        assert_eq!(encode(&(7u32, -3i64, true)), "7:-3:true");
        assert_eq!(encode(&b"\x00\xff"[..]), "%00%FF");
    }

    proptest! {
        // Every segment decodes back to its value, never holds `:`, `{`, `}` or `%` other
        // than as escapes, and pairs split unambiguously at their one raw `:`.
        #[test]
        fn segments_round_trip(a in proptest::collection::vec(any::<u8>(), 0..40),
                               b in ".{0,20}") {
            let mut s = String::new();
            push_segment_bytes(&mut s, &a);
            prop_assert!(!s.is_empty());
            prop_assert!(s.bytes().all(|c| c.is_ascii_alphanumeric() || b"-.~%_".contains(&c)));
            prop_assert_eq!(decode(&s), a.clone());
            let pair = encode(&(a.clone(), b.clone().into_bytes()));
            let (l, r) = pair.split_once(':').unwrap();
            prop_assert!(!r.contains(':'));
            prop_assert_eq!(decode(l), a);
            prop_assert_eq!(decode(r), b.into_bytes());
        }

        #[test]
        fn ip_keys_are_canonical(ip in any::<IpAddr>()) {
            let s = encode(&ip);
            let back = String::from_utf8(decode(&s)).unwrap();
            prop_assert_eq!(back.parse::<IpAddr>().unwrap(), ip.to_canonical());
        }
    }
}
