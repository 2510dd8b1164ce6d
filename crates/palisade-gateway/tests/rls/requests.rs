//! Malformed requests: a clear INVALID_ARGUMENT naming the field, never a panic, and the
//! service keeps answering.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::google::protobuf::UInt64Value;
use tonic::Code as GrpcCode;

use crate::support::{Rls, descriptor, request};

const CONFIG: &str = "domain: edge\ndescriptors:\n  - key: ip\n    rate_limit: {unlimited: true}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument() {
    // No Redis needed: nothing here reaches it (unlimited descriptors only).
    let rls = Rls::start(CONFIG, &["--redis", "redis://127.0.0.1:1"]);
    let mut client = rls.client().await;
    let long = "x".repeat(2000);
    let year = {
        let mut d = descriptor(&[("ip", "1")]);
        d.limit = Some(RateLimitOverride {
            requests_per_unit: 1,
            unit: 6,
        });
        d
    };
    let unknown_unit = {
        let mut d = descriptor(&[("ip", "1")]);
        d.limit = Some(RateLimitOverride {
            requests_per_unit: 1,
            unit: 42,
        });
        d
    };
    let negative = {
        let mut d = descriptor(&[("ip", "1")]);
        d.is_negative_hits = true;
        d
    };
    let huge = {
        let mut d = descriptor(&[("ip", "1")]);
        d.hits_addend = Some(UInt64Value { value: u64::MAX });
        d
    };
    let cases = [
        (
            request("", vec![descriptor(&[("ip", "1")])]),
            "domain: must not be empty",
        ),
        (request("edge", vec![]), "descriptors: must not be empty"),
        (
            request("edge", vec![descriptor(&[("ip", "1")]), descriptor(&[])]),
            "descriptors[1].entries: must not be empty",
        ),
        (
            request("edge", vec![descriptor(&[("ip", "1"), ("", "v")])]),
            "descriptors[0].entries[1].key: must not be empty",
        ),
        (
            request("edge", vec![descriptor(&[("ip", long.as_str())])]),
            "descriptors[0].entries[0]: key and value must be at most 1024 bytes each",
        ),
        (
            request("edge", vec![descriptor(&[("ip", "1")]); 65]),
            "descriptors: at most 64 per request",
        ),
        (
            request("edge", vec![year]),
            "descriptors[0].limit.unit: `year` is not supported",
        ),
        (
            request("edge", vec![unknown_unit]),
            "descriptors[0].limit.unit: unknown unit number 42",
        ),
        (
            request("edge", vec![negative]),
            "descriptors[0].is_negative_hits: is not supported",
        ),
        (
            request("edge", vec![huge]),
            "descriptors[0].hits_addend: must be at most 4294967295",
        ),
    ];
    for (req, message) in cases {
        let e = client.should_rate_limit(req).await.unwrap_err();
        assert_eq!(e.code(), GrpcCode::InvalidArgument, "{e:?}");
        assert!(
            e.message().starts_with(message),
            "{:?} vs {message:?}",
            e.message()
        );
    }
    // Still serving.
    let r = client
        .should_rate_limit(request("edge", vec![descriptor(&[("ip", "1")])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, Code::Ok as i32);
}
