//! Integration tests of palisade-policy, one binary with a module per topic (tower's layout).

mod support;

mod axum;
mod builder;
mod cache;
mod cli;
mod client;
mod explain;
mod fault;
mod gate;
mod gateway_sections;
mod instance;
mod matcher;
mod reload;
mod schema;
mod server;
mod validate;
mod watch;
