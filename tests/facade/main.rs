//! Integration tests of the facade and its examples, one binary with a module per topic
//! (tower's layout): real servers and clients on 127.0.0.1.

mod support;

mod axum_example;
mod chaos_flag;
mod clients;
mod config;
mod consumer_inbox;
mod cqrs_example;
mod exactly_once;
mod grpc;
mod timeout_http;
