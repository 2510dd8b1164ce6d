//! Storage keys: an escaped segment never contains the `:` separator or a character outside
//! the documented set, and decodes back to the bytes it came from (so no two inputs collide).
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_core::storage_key::push_segment_bytes;

fn decode(s: &str) -> Vec<u8> {
    if s == "_" {
        return Vec::new();
    }
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut s = String::new();
    push_segment_bytes(&mut s, data);
    assert!(
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'~' | b'%' | b'_'))
    );
    assert_eq!(decode(&s), data);
});
