//! Integration tests of palisade-policy, one binary with a module per topic (tower's layout).

mod support;

mod axum;
mod cli;
mod explain;
mod gate;
mod matcher;
mod reload;
mod server;
mod validate;
mod watch;
