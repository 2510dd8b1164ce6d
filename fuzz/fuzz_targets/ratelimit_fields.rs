//! The IETF `RateLimit` and `RateLimit-Policy` fields a client layer reads from upstreams.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_ratelimit::parse;

fuzz_target!(|data: &[u8]| {
    let _ = parse::parse_policy(data);
    let _ = parse::parse_limit(data);
});
