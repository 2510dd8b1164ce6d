//! A policy file (TOML, JSON or YAML: the first byte picks) loaded and validated as
//! `palisade-policy check` does: every problem is reported, nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_policy::PolicySet;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = match which % 3 {
        0 => PolicySet::from_toml(text),
        1 => PolicySet::from_json(text),
        _ => PolicySet::from_yaml(text),
    };
});
