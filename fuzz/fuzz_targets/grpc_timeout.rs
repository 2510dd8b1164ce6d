//! `grpc-timeout` (`1*8DIGIT unit`): never panics; an accepted value re-encodes to a value that
//! parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_core::deadline::grpc_timeout;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = grpc_timeout::parse(data) {
        let again = grpc_timeout::encode(d);
        assert!(grpc_timeout::parse(again.as_bytes()).is_ok());
    }
});
