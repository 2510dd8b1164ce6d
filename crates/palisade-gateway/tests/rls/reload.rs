//! SIGHUP reloads the files: a valid set replaces the configuration, a bad one is refused
//! and the last good one stays.

use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tonic::transport::Channel;

use crate::support::{Rls, STEP, delete, descriptor, redis, request, unique_prefix};

const ONE: &str = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 1}\n";
const FIVE: &str = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 5}\n";

/// The limit applied to `user` (each call spends one of its units).
async fn limit_of(client: &mut RateLimitServiceClient<Channel>, user: &str) -> u32 {
    let r = client
        .should_rate_limit(request("edge", vec![descriptor(&[("user", user)])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statuses[0].code, Code::Ok as i32);
    r.statuses[0]
        .current_limit
        .as_ref()
        .unwrap()
        .requests_per_unit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_valid_config_and_keeps_the_last_good_one() {
    let Some(mut conn) = redis().await else {
        return;
    };
    let prefix = unique_prefix("reload");
    let rls = Rls::start(ONE, &["--prefix", &prefix, "--redis-timeout", "5s"]);
    let mut client = rls.client().await;
    assert_eq!(limit_of(&mut client, "a").await, 1);

    // A bad file is refused: still one per minute.
    std::fs::write(rls.config_path(), "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: fortnight, requests_per_unit: 5}\n").unwrap();
    rls.hangup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(limit_of(&mut client, "b").await, 1);

    // A good one replaces it.
    std::fs::write(rls.config_path(), FIVE).unwrap();
    rls.hangup();
    let deadline = tokio::time::Instant::now() + STEP;
    let mut i = 0;
    loop {
        i += 1;
        if limit_of(&mut client, &format!("c{i}")).await == 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    delete(&mut conn, &prefix).await;
}
