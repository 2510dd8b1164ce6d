//! A flag file (JSON) as the file provider loads it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = palisade_toggle::FlagSet::from_json(text);
    }
});
