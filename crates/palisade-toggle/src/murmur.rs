//! MurmurHash3 x86_32 (Austin Appleby, public domain), the hash flagd's `fractional` uses.
//!
//! One implementation: a streaming hasher fed with byte slices, so `flagKey + targetingKey`
//! is hashed without building the concatenation, and the one-slice form is the same code.
//! Checked against the vectors flagd's test bed publishes (`flagd-testbed`,
//! `evaluator/gherkin/fractional.feature`, `@fractional-v2`): keys whose hashes are exactly
//! 0, 1, `i32::MAX`, `2^31` and `u32::MAX`, and the variants flagd assigns to given users.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// A MurmurHash3 x86_32 computation over bytes given in pieces.
#[derive(Debug, Clone, Copy)]
struct Murmur3 {
    h: u32,
    /// Bytes not yet forming a 4-byte block.
    carry: [u8; 4],
    carried: usize,
    len: usize,
}

impl Murmur3 {
    const fn new(seed: u32) -> Self {
        Self {
            h: seed,
            carry: [0; 4],
            carried: 0,
            len: 0,
        }
    }

    fn block(&mut self, k: u32) {
        self.h ^= mix(k);
        self.h = self
            .h
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    fn write(&mut self, mut data: &[u8]) {
        self.len += data.len();
        if self.carried > 0 {
            let take = (4 - self.carried).min(data.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&data[..take]);
            self.carried += take;
            data = &data[take..];
            if self.carried < 4 {
                return;
            }
            self.block(u32::from_le_bytes(self.carry));
            self.carried = 0;
        }
        let mut chunks = data.chunks_exact(4);
        for chunk in &mut chunks {
            self.block(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        }
        let tail = chunks.remainder();
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carried = tail.len();
    }

    fn finish(mut self) -> u32 {
        if self.carried > 0 {
            let mut k: u32 = 0;
            for (i, b) in self.carry[..self.carried].iter().enumerate() {
                k |= u32::from(*b) << (8 * i);
            }
            self.h ^= mix(k);
        }
        // The length is mixed in modulo 2^32, as the reference implementation does.
        self.h ^= self.len as u32;
        fmix(self.h)
    }
}

fn mix(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// MurmurHash3 x86_32 of `data` with `seed` (flagd uses seed 0).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut m = Murmur3::new(seed);
    m.write(data);
    m.finish()
}

/// MurmurHash3 x86_32 (seed 0) of `first` followed by `second`, without building the
/// concatenation (for `flagKey + targetingKey`).
pub(crate) fn murmur3_concat(first: &[u8], second: &[u8]) -> u32 {
    let mut m = Murmur3::new(0);
    m.write(first);
    m.write(second);
    m.finish()
}

/// flagd's bucket: `(h × total) >> 32` in 64-bit arithmetic, in `0..total`.
pub fn bucket(hash: u32, total_weight: u32) -> u32 {
    ((u64::from(hash) * u64::from(total_weight)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_vectors() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"hello", 0), 613_153_351);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        for (s, h, b) in [
            ("foo@bar.com", 764_043_991_u32, 17),
            ("foo@test.com", 1_067_298_043, 24),
            ("headerColoruser-1", 2_464_466_138, 57),
            ("headerColoruser-2", 3_556_701_001, 82),
            ("headerColorfoo@bar.com", 4_240_531_476, 98),
            ("my-flaguser-123", 680_103_842, 15),
        ] {
            assert_eq!(murmur3_x86_32(s.as_bytes(), 0), h, "{s}");
            assert_eq!(bucket(h, 100), b, "{s}");
        }
    }

    /// flagd-testbed `fractional.feature`, "hash edge cases": preimages of the boundary
    /// hashes, and the bucket each falls in out of 100.
    #[test]
    fn flagd_hash_edge_vectors() {
        for (key, hash, bucket_of_100) in [
            ("ejOoVL", 0_u32, 0),
            ("bY9fO-", 1, 0),
            ("SI7p-", 2_147_483_647, 49),
            ("6LvT0", 2_147_483_648, 50),
            ("ceQdGm", u32::MAX, 99),
        ] {
            assert_eq!(murmur3_x86_32(key.as_bytes(), 0), hash, "{key}");
            assert_eq!(bucket(hash, 100), bucket_of_100, "{key}");
        }
    }

    #[test]
    fn concat_splits_at_every_offset() {
        let s = b"fractional-flagjack@company.com";
        let whole = murmur3_x86_32(s, 0);
        for i in 0..=s.len() {
            assert_eq!(murmur3_concat(&s[..i], &s[i..]), whole, "split at {i}");
        }
    }

    /// flagd-testbed `fractional.feature` (`@fractional-v2`) with its flags from
    /// `evaluator/flags/testkit-flags.json`: the variant flagd assigns to each subject.
    #[test]
    fn flagd_fractional_vectors() {
        use crate::{EvaluationContext, Fractional};
        let suits = || {
            Fractional::new([
                ("clubs", 25),
                ("diamonds", 25),
                ("hearts", 25),
                ("spades", 25),
            ])
        };
        let by = |seed: String| EvaluationContext::new().with("seed", seed);
        // `fractional-flag`: `cat($flagd.flagKey, user.name)`.
        for (name, suit) in [
            ("jack", "hearts"),
            ("queen", "spades"),
            ("ten", "clubs"),
            ("nine", "diamonds"),
            ("3", "clubs"),
        ] {
            let ctx = by(format!("fractional-flag{name}"));
            assert_eq!(
                suits().by("seed").pick("fractional-flag", &ctx),
                Some(suit),
                "{name}"
            );
        }
        // `fractional-flag-A-shared-seed`: `cat("shared-seed", user.name)`.
        for (name, suit) in [
            ("seven", "hearts"),
            ("eight", "diamonds"),
            ("nine", "clubs"),
            ("two", "spades"),
        ] {
            let ctx = by(format!("shared-seed{name}"));
            assert_eq!(
                suits()
                    .by("seed")
                    .pick("fractional-flag-A-shared-seed", &ctx),
                Some(suit),
                "{name}"
            );
        }
        // `fractional-flag-shorthand`: no expression, so flagKey + targetingKey; weights 1:1.
        let coin = Fractional::new([("heads", 1), ("tails", 1)]);
        for (key, side) in [("jon@company.com", "heads"), ("jane@company.com", "tails")] {
            let ctx = EvaluationContext::new().with_targeting_key(key);
            assert_eq!(
                coin.pick("fractional-flag-shorthand", &ctx),
                Some(side),
                "{key}"
            );
        }
        // `fractional-hash-edge-flag`: `var targetingKey`, lower/upper 50:50.
        let halves = Fractional::new([("lower", 50), ("upper", 50)]).by("seed");
        for (key, half) in [
            ("ejOoVL", "lower"),
            ("bY9fO-", "lower"),
            ("SI7p-", "lower"),
            ("6LvT0", "upper"),
            ("ceQdGm", "upper"),
        ] {
            assert_eq!(
                halves.pick("fractional-hash-edge-flag", &by(key.to_owned())),
                Some(half),
                "{key}"
            );
        }
    }

    proptest! {
        #[test]
        fn concat_equals_hash_of_concatenation(a in ".{0,20}", b in ".{0,20}") {
            let joined = format!("{a}{b}");
            prop_assert_eq!(murmur3_concat(a.as_bytes(), b.as_bytes()), murmur3_x86_32(joined.as_bytes(), 0));
        }

        #[test]
        fn bucket_in_range(h in any::<u32>(), total in 1u32..=i32::MAX as u32) {
            prop_assert!(bucket(h, total) < total);
        }
    }
}
