#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use palisade_test::ScriptedService;
use palisade_test::scripted::{Step, respond};

/// A test arm: palisade-test's `ScriptedService`, answering 200 with its name in `x-arm`
/// until told otherwise (`set_otherwise(status(500))`); `calls()` counts what it served.
pub type Arm = ScriptedService;

/// An arm answering with its name.
pub fn arm(name: &'static str) -> Arm {
    ScriptedService::otherwise(named(name))
}

/// A step answering 200 with `name` in `x-arm`.
pub fn named(name: &'static str) -> Step {
    respond(move |_| {
        Ok(Response::builder()
            .header("x-arm", name)
            .body(Full::new(Bytes::new()))
            .unwrap())
    })
}
