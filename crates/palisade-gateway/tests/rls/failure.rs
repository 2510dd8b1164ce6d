//! Redis down: UNAVAILABLE by default (Envoy's `failure_mode_deny` decides), or the
//! configured allow / deny, within the Redis timeout.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use tonic::Code as GrpcCode;

use crate::support::{Rls, descriptor, request};

const CONFIG: &str = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 5}\n";

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_or_the_configured_answer() {
    let redis = format!("redis://127.0.0.1:{}", closed_port());
    let req = || request("edge", vec![descriptor(&[("user", "a")])]);
    for (mode, expected) in [
        ("error", None),
        ("allow", Some(Code::Ok)),
        ("deny", Some(Code::OverLimit)),
    ] {
        let rls = Rls::start(
            CONFIG,
            &[
                "--redis",
                &redis,
                "--redis-timeout",
                "200ms",
                "--on-redis-failure",
                mode,
            ],
        );
        let mut client = rls.client().await;
        let started = Instant::now();
        let r = client.should_rate_limit(req()).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{mode}: {:?}",
            started.elapsed()
        );
        match expected {
            None => {
                let e = r.unwrap_err();
                assert_eq!(e.code(), GrpcCode::Unavailable, "{e:?}");
                assert!(e.message().starts_with("rate limit store failed"), "{e:?}");
            }
            Some(code) => assert_eq!(r.unwrap().into_inner().overall_code, code as i32, "{mode}"),
        }
    }
}
