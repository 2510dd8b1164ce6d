//! `Cookie` header lines as the flag and traffic layers read them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Ok(value) = http::HeaderValue::from_bytes(line) else {
            return;
        };
        headers.append(http::header::COOKIE, value);
    }
    for name in ["arm", "a", "session-id", ""] {
        if let Some(v) = palisade_core::cookie::cookie_value(&headers, name) {
            assert!(!v.contains(';'));
        }
    }
});
