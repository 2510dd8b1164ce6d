//! Integration tests of palisade-bulkhead, one binary with a module per topic (tower's layout).
//! The `loom` model is its own binary (`tests/loom.rs`): it builds only under `--cfg loom`.

mod adaptive;
mod events;
mod keyed;
mod service;
