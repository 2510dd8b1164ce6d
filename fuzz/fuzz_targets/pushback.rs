//! `grpc-retry-pushback-ms`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = palisade_retry::policy::parse_pushback(data);
});
