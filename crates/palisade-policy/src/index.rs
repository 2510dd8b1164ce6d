//! A route index by first path segment, so that dispatch over many routes does not test
//! every matcher: first match wins still holds, because candidates are visited in file order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::matcher::Matcher;

/// Routes by the literal first path segment their matcher requires; the others in `rest`.
/// Both lists are in file order.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_segment: HashMap<Box<str>, Vec<usize>, BuildHasherDefault<SegmentHasher>>,
    rest: Vec<usize>,
}

impl Index {
    /// Indexes `matchers` (the fallback excluded).
    pub(crate) fn new<'a>(matchers: impl IntoIterator<Item = &'a Matcher>) -> Self {
        let mut index = Self::default();
        for (i, m) in matchers.into_iter().enumerate() {
            match first_segment(m) {
                Some(seg) => index.by_segment.entry(seg.into()).or_default().push(i),
                None => index.rest.push(i),
            }
        }
        index
    }

    /// The first candidate (in file order) for which `hit` holds.
    pub(crate) fn find(&self, path: &str, mut hit: impl FnMut(usize) -> bool) -> Option<usize> {
        let seg = path.strip_prefix('/').map(|p| &p[..slash(p)]);
        let bucket: &[usize] = seg
            .and_then(|s| self.by_segment.get(s))
            .map_or(&[], Vec::as_slice);
        if self.rest.is_empty() {
            return bucket.iter().copied().find(|&i| hit(i));
        }
        let (mut a, mut b) = (bucket.iter().peekable(), self.rest.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_) | None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => return None,
            };
            let i = *next.expect("peeked");
            if hit(i) {
                return Some(i);
            }
        }
    }
}

/// The byte offset of the first `/` in `s`, else its length: a plain loop, faster than a
/// `memchr` call on the few bytes of a path segment.
pub(crate) fn slash(s: &str) -> usize {
    s.bytes().position(|b| b == b'/').unwrap_or(s.len())
}

/// FNV-1a over a path segment: a few nanoseconds where SipHash takes tens, on the per-request
/// path. The keys are the file's own literals, so hash flooding by clients cannot grow a
/// bucket: a client's segment is only looked up, never inserted.
#[derive(Default)]
pub(crate) struct SegmentHasher(u64);

impl Hasher for SegmentHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The literal first path segment every request `m` matches must have, if there is one.
fn first_segment(m: &Matcher) -> Option<&str> {
    match m {
        Matcher::Path(t) => t.first_literal(),
        Matcher::Prefix(p) => {
            let seg = p.strip_prefix('/')?.split('/').next()?;
            (!seg.is_empty()).then_some(seg)
        }
        Matcher::Glob(g) => g.first_literal(),
        Matcher::All(ms) => ms.iter().find_map(first_segment),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_come_in_file_order_across_bucket_and_rest() {
        let ms = [
            Matcher::path("/a/{id}").unwrap(),  // 0: bucket a
            Matcher::method(http::Method::GET), // 1: rest
            Matcher::prefix("/a").unwrap(),     // 2: bucket a
            Matcher::glob("/*/x").unwrap(),     // 3: rest
            Matcher::glob("/b/**").unwrap(),    // 4: bucket b
            Matcher::path("/{x}").unwrap(),     // 5: rest
        ];
        let index = Index::new(&ms);
        let mut seen = Vec::new();
        assert_eq!(
            index.find("/a/1", |i| {
                seen.push(i);
                false
            }),
            None
        );
        assert_eq!(seen, [0, 1, 2, 3, 5]);
        seen.clear();
        assert_eq!(
            index.find("/b", |i| {
                seen.push(i);
                i == 4
            }),
            Some(4)
        );
        assert_eq!(seen, [1, 3, 4]);
        seen.clear();
        index.find("no-slash", |i| {
            seen.push(i);
            false
        });
        assert_eq!(seen, [1, 3, 5]);
    }

    fn matcher(kind: u8, seg: &str) -> Matcher {
        match kind % 7 {
            0 => Matcher::path(&format!("/{seg}/{{id}}")).unwrap(),
            1 => Matcher::prefix(&format!("/{seg}")).unwrap(),
            2 => Matcher::glob(&format!("/{seg}/**")).unwrap(),
            3 => Matcher::glob("/*/x").unwrap(),
            4 => Matcher::method(http::Method::POST),
            5 => Matcher::path(&format!("/{seg}"))
                .unwrap()
                .and(Matcher::method(http::Method::GET)),
            _ => Matcher::path("/{x}").unwrap(),
        }
    }

    proptest::proptest! {
        #[test]
        fn the_index_finds_what_a_linear_scan_finds(
            routes in proptest::collection::vec((0u8..7, "[ab]{1,2}"), 0..12),
            path in "(/[abx]{0,2}){0,3}",
            post in proptest::bool::ANY,
        ) {
            let ms: Vec<Matcher> = routes.iter().map(|(k, s)| matcher(*k, s)).collect();
            let index = Index::new(&ms);
            let method = if post { http::Method::POST } else { http::Method::GET };
            let uri: http::Uri = if path.is_empty() { "/".parse().unwrap() } else { path.parse().unwrap() };
            let headers = http::HeaderMap::new();
            let linear = ms.iter().position(|m| m.matches_head(&method, &uri, &headers));
            let indexed = index.find(uri.path(), |i| ms[i].matches_head(&method, &uri, &headers));
            proptest::prop_assert_eq!(indexed, linear);
        }
    }
}
