//! `Idempotency-Key` (an RFC 8941 sf-string or sf-token, or an opaque key in lenient mode).
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_idempotency::key::{KeyMode, parse_key};

fuzz_target!(|data: &[u8]| {
    for mode in [KeyMode::Structured, KeyMode::Strict, KeyMode::Lenient] {
        if let Ok(key) = parse_key(data, mode, 255) {
            assert!(!key.is_empty() && key.len() <= 255);
        }
    }
});
