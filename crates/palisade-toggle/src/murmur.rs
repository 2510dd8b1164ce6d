//! MurmurHash3 x86_32 (Austin Appleby, public domain), the hash flagd's `fractional` uses.

/// MurmurHash3 x86_32 of `data` with `seed` (flagd uses seed 0).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    fmix(h)
}

/// Hashes the concatenation of `parts` without building it (for `flagKey + targetingKey`).
pub(crate) fn murmur3_concat(first: &[u8], second: &[u8]) -> u32 {
    // Stream the two slices through the block function with a 4-byte carry buffer.
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut buf = [0u8; 4];
    let mut n = 0usize;
    for &byte in first.iter().chain(second.iter()) {
        buf[n] = byte;
        n += 1;
        if n == 4 {
            let mut k = u32::from_le_bytes(buf);
            k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
            h ^= k;
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
            n = 0;
        }
    }
    if n > 0 {
        let mut k: u32 = 0;
        for (i, byte) in buf[..n].iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= (first.len() + second.len()) as u32;
    fmix(h)
}

fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
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
    fn specs_vectors() {
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
