use super::*;
use crate::BoxError;

#[test]
fn finds_rejections_in_boxes_and_chains() {
    let err: BoxError = Box::new(CircuitOpen::new(None));
    let r = find_rejection(&*err).unwrap();
    assert_eq!(r.kind(), "circuit_open");

    #[derive(Debug)]
    struct Wrapper(Elapsed);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
    let err: BoxError = Box::new(Wrapper(Elapsed::new(Duration::from_secs(1))));
    assert_eq!(find_rejection(&*err).unwrap().kind(), "timeout");

    let err: BoxError = "plain".into();
    assert!(find_rejection(&*err).is_none());
}

#[test]
fn custom_rejection_through_any() {
    #[derive(Debug)]
    struct Teapot;
    simple_error!(Teapot, "short and stout");
    impl Rejection for Teapot {
        fn kind(&self) -> &'static str {
            "teapot"
        }
        fn status(&self) -> StatusCode {
            StatusCode::IM_A_TEAPOT
        }
        fn grpc_code(&self) -> GrpcCode {
            GrpcCode::Unimplemented
        }
    }
    let err: BoxError = Box::new(AnyRejection::new(Teapot));
    let r = find_rejection(&*err).unwrap();
    assert_eq!(r.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(r.title(), "I'm a teapot");
}

#[test]
fn mapping_table() {
    let table: Vec<(Box<dyn Rejection>, u16, GrpcCode)> = vec![
        (
            Box::new(Elapsed::new(Duration::ZERO)),
            504,
            GrpcCode::DeadlineExceeded,
        ),
        (Box::new(CircuitOpen::new(None)), 503, GrpcCode::Unavailable),
        (
            Box::new(BulkheadFull::new(None)),
            503,
            GrpcCode::ResourceExhausted,
        ),
        (
            Box::new(RateLimited::new(Duration::ZERO, HeaderMap::new(), vec![])),
            429,
            GrpcCode::ResourceExhausted,
        ),
        (Box::new(IdempotencyConflict), 409, GrpcCode::Aborted),
        (
            Box::new(IdempotencyMismatch),
            422,
            GrpcCode::FailedPrecondition,
        ),
        (
            Box::new(IdempotencyKeyMissing),
            400,
            GrpcCode::InvalidArgument,
        ),
        (
            Box::new(IdempotencyKeyInvalid::new("empty")),
            400,
            GrpcCode::InvalidArgument,
        ),
        (
            Box::new(StoreUnavailable::new(None)),
            503,
            GrpcCode::Unavailable,
        ),
    ];
    for (r, status, code) in table {
        assert_eq!(r.status().as_u16(), status, "{}", r.kind());
        assert_eq!(r.grpc_code(), code, "{}", r.kind());
    }
}

#[test]
fn throttled_renders_503_with_its_header_and_unavailable() {
    let err: BoxError = Throttled::new(0.5).into();
    let r = find_rejection(&*err).unwrap();
    assert_eq!(r.kind(), "throttled");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.grpc_code(), GrpcCode::Unavailable);
    assert_eq!(r.retry_after(), None);
    let res = crate::response::rejection_response(r);
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()[crate::header::THROTTLED], "1");
    assert!(res.headers().get(http::header::RETRY_AFTER).is_none());
    let grpc = crate::response::grpc_rejection_response(r);
    assert_eq!(grpc.headers()["grpc-status"], "14");
}
