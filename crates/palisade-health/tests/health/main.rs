//! Integration tests of palisade-health, one binary with a module per topic (tower's layout).

mod aggregate_prop;
mod builtin;
mod grpc;
mod registry;
