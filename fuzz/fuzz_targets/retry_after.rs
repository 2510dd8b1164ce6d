//! `Retry-After` (delay-seconds or an HTTP-date), alone and against a `Date` header.
#![no_main]
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use palisade_core::retry_after;

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let _ = retry_after::parse(&value, now);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::RETRY_AFTER, value.clone());
    headers.insert(http::header::DATE, value);
    let _ = retry_after::from_headers(&headers, now);
});
