//! Decisions against the machine's Redis: per-descriptor statuses, the overall code, shadow
//! mode, unlimited and unmatched descriptors, hits_addend, overrides and the headers.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;

use crate::support::{Rls, STEP, delete, descriptor, keys, redis, request, unique_prefix};

const CONFIG: &str = "
domain: edge
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: user
    value: vip
    rate_limit: {unit: minute, requests_per_unit: 100, name: vip}
  - key: path
    value: /login
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1, name: login}
  - key: ip
    rate_limit: {unlimited: true}
  - key: blocked
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: tenant
    value: acme
    descriptors:
      - key: user
        rate_limit: {unit: hour, requests_per_unit: 2, name: acme-user}
";

fn header<'a>(r: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    r.response_headers_to_add
        .iter()
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

fn code(s: &DescriptorStatus) -> Code {
    Code::try_from(s.code).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_per_descriptor_and_the_overall_code() {
    let Some(mut conn) = redis().await else {
        return;
    };
    let prefix = unique_prefix("decisions");
    let rls = Rls::start(CONFIG, &["--prefix", &prefix, "--redis-timeout", "5s"]);
    let mut client = rls.client().await;
    let mut call = async |req: RateLimitRequest| {
        tokio::time::timeout(STEP, client.should_rate_limit(req))
            .await
            .expect("call timed out")
            .unwrap()
            .into_inner()
    };

    // Three per minute for each user: OK with 2, 1, 0 remaining, then OVER_LIMIT.
    for left in [2, 1, 0] {
        let r = call(request("edge", vec![descriptor(&[("user", "alice")])])).await;
        assert_eq!(r.overall_code, Code::Ok as i32);
        let s = &r.statuses[0];
        assert_eq!(code(s), Code::Ok);
        assert_eq!(s.limit_remaining, left);
        let limit = s.current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.name.as_str(), limit.requests_per_unit, limit.unit),
            ("user", 3, 2)
        );
        let reset = s.duration_until_reset.unwrap();
        assert!(
            reset.seconds <= 60 && (reset.seconds, reset.nanos) > (0, 0),
            "{reset:?}"
        );
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        assert_eq!(
            header(&r, "x-ratelimit-limit"),
            Some(r#"3, 3;w=60;name="user""#)
        );
        assert_eq!(header(&r, "ratelimit-policy"), Some(r#""user";q=3;w=60"#));
        assert_eq!(header(&r, "retry-after"), None);
    }
    let r = call(request("edge", vec![descriptor(&[("user", "alice")])])).await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(code(&r.statuses[0]), Code::OverLimit);
    assert_eq!(r.statuses[0].limit_remaining, 0);
    // One unit comes back every 20 s.
    let wait = r.statuses[0].duration_until_reset.unwrap();
    assert!((19..=20).contains(&wait.seconds), "{wait:?}");
    assert_eq!(header(&r, "retry-after"), Some("20"));
    assert_eq!(header(&r, "ratelimit"), Some(r#""user";r=0;t=20"#));

    // Another value of the key-only descriptor has its own bucket; the exact value its own limit.
    let r = call(request(
        "edge",
        vec![
            descriptor(&[("user", "bob")]),
            descriptor(&[("user", "vip")]),
            descriptor(&[("ip", "10.0.0.1")]),
            descriptor(&[("nothing", "here")]),
            descriptor(&[("user", "alice")]),
        ],
    ))
    .await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    let codes: Vec<Code> = r.statuses.iter().map(code).collect();
    assert_eq!(
        codes,
        [Code::Ok, Code::Ok, Code::Ok, Code::Ok, Code::OverLimit]
    );
    assert_eq!(r.statuses[0].limit_remaining, 2);
    assert_eq!(r.statuses[1].limit_remaining, 99);
    assert_eq!(r.statuses[1].current_limit.as_ref().unwrap().name, "vip");
    // Unlimited: no limit, u32::MAX remaining (as the reference service); unmatched: no limit.
    assert_eq!(r.statuses[2].current_limit, None);
    assert_eq!(r.statuses[2].limit_remaining, u32::MAX);
    assert_eq!(r.statuses[3].current_limit, None);
    assert_eq!(r.statuses[3].limit_remaining, 0);
    // The headers describe the refusing limit.
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        header(&r, "x-ratelimit-limit"),
        Some(r#"3, 3;w=60;name="user", 100;w=60;name="vip", 3;w=60;name="user""#)
    );

    // Shadow mode: over the limit, still OK.
    for left in [0, 0] {
        let r = call(request("edge", vec![descriptor(&[("path", "/login")])])).await;
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(code(&r.statuses[0]), Code::Ok);
        assert_eq!(r.statuses[0].limit_remaining, left);
    }
    // requests_per_unit 0 refuses everything, without Redis.
    let r = call(request("edge", vec![descriptor(&[("blocked", "x")])])).await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].duration_until_reset.unwrap().seconds, 1);

    // Nested: the limit is the last entry's.
    for expected in [Code::Ok, Code::Ok, Code::OverLimit] {
        let r = call(request(
            "edge",
            vec![descriptor(&[("tenant", "acme"), ("user", "u1")])],
        ))
        .await;
        assert_eq!(code(&r.statuses[0]), expected);
    }
    let r = call(request("edge", vec![descriptor(&[("tenant", "acme")])])).await;
    assert_eq!(
        (code(&r.statuses[0]), r.statuses[0].current_limit.clone()),
        (Code::Ok, None)
    );

    // hits_addend: the request's (0 means 1), overridden by the descriptor's.
    let mut req = request("edge", vec![descriptor(&[("user", "carol")])]);
    req.hits_addend = 2;
    let r = call(req.clone()).await;
    assert_eq!(r.statuses[0].limit_remaining, 1);
    let r = call(req.clone()).await;
    assert_eq!(code(&r.statuses[0]), Code::OverLimit);
    req.descriptors[0].hits_addend = Some(UInt64Value { value: 1 });
    let r = call(req).await;
    assert_eq!(
        (code(&r.statuses[0]), r.statuses[0].limit_remaining),
        (Code::Ok, 0)
    );

    // A limit override from Envoy replaces the configured one.
    let mut d = descriptor(&[("user", "dave")]);
    d.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: 1, // SECOND
    });
    let r = call(request("edge", vec![d.clone()])).await;
    assert_eq!(code(&r.statuses[0]), Code::Ok);
    let limit = r.statuses[0].current_limit.clone().unwrap();
    assert_eq!((limit.requests_per_unit, limit.unit), (1, 1));
    let r = call(request("edge", vec![d])).await;
    assert_eq!(code(&r.statuses[0]), Code::OverLimit);

    // An unknown domain limits nothing.
    let r = call(request("elsewhere", vec![descriptor(&[("user", "alice")])])).await;
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert!(r.response_headers_to_add.is_empty());

    // One key per bucket, hash-tagged by domain and entries; all deleted.
    let found = keys(&mut conn, &prefix).await;
    assert!(
        found.contains(&format!("{prefix}rls:{{edge:user:alice}}:user")),
        "{found:?}"
    );
    assert!(found.contains(&format!(
        "{prefix}rls:{{edge:tenant:acme:user:u1}}:acme-user"
    )));
    // alice, bob, vip, /login, acme/u1, carol and (unless it expired already) dave's override.
    assert!((6..=7).contains(&found.len()), "{found:?}");
    delete(&mut conn, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_buckets() {
    let Some(mut conn) = redis().await else {
        return;
    };
    let prefix = unique_prefix("shared");
    let args = ["--prefix", prefix.as_str(), "--redis-timeout", "5s"];
    let (a, b) = (Rls::start(CONFIG, &args), Rls::start(CONFIG, &args));
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let mut ok = 0;
    for i in 0..6 {
        let c = if i % 2 == 0 { &mut ca } else { &mut cb };
        let r = c
            .should_rate_limit(request("edge", vec![descriptor(&[("user", "erin")])]))
            .await
            .unwrap()
            .into_inner();
        if r.overall_code == Code::Ok as i32 {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
    delete(&mut conn, &prefix).await;
}
