//! Rendering rejections and unknown errors as HTTP or gRPC responses.

use std::error::Error;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value};

use crate::grpc::{self, GrpcCode};
use crate::rejection::{Rejection, find_rejection};
use crate::retry_after;

/// Content type of RFC 9457 problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

pub use crate::grpc::GRPC_RETRY_PUSHBACK_MS;

/// Which wire protocol a rejection is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Protocol {
    /// gRPC when the request's `content-type` starts with `application/grpc`, else HTTP.
    #[default]
    Auto,
    /// Always HTTP problem details.
    Http,
    /// Always gRPC trailers-only responses.
    Grpc,
}

impl Protocol {
    /// Resolves [`Protocol::Auto`] against a request's headers: `true` means gRPC.
    pub fn is_grpc(self, request_headers: &HeaderMap) -> bool {
        match self {
            Self::Http => false,
            Self::Grpc => true,
            Self::Auto => grpc::is_grpc(request_headers),
        }
    }
}

/// The RFC 9457 problem object for a rejection.
pub fn problem_json(rejection: &dyn Rejection) -> Value {
    let mut members = Map::new();
    members.insert("type".into(), Value::from(rejection.problem_type()));
    members.insert("title".into(), Value::from(rejection.title()));
    members.insert("status".into(), Value::from(rejection.status().as_u16()));
    members.insert("detail".into(), Value::from(rejection.detail()));
    rejection.problem_extensions(&mut members);
    Value::Object(members)
}

/// An HTTP response for a rejection: its status, `Retry-After`, its own headers and a
/// problem+json body.
pub fn rejection_response(rejection: &dyn Rejection) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&problem_json(rejection)).unwrap_or_default();
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = rejection.status();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(after) = rejection.retry_after() {
        headers.insert(header::RETRY_AFTER, retry_after::to_header_value(after));
    }
    rejection.extra_headers(headers);
    res.extensions_mut()
        .insert(crate::rejection::RenderedRejection::new(rejection.kind()));
    res
}

/// A gRPC trailers-only response for a rejection: HTTP 200, `content-type: application/grpc`,
/// `grpc-status`, percent-encoded `grpc-message`, and `grpc-retry-pushback-ms` when the
/// rejection has a retry hint.
pub fn grpc_rejection_response(rejection: &dyn Rejection) -> Response<Full<Bytes>> {
    let mut res = grpc_status_response(rejection.grpc_code(), &rejection.to_string());
    if let Some(after) = rejection.retry_after() {
        let ms = u64::try_from(after.as_millis())
            .unwrap_or(u64::MAX)
            .min(i32::MAX as u64);
        res.headers_mut()
            .insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from(ms));
    }
    res.extensions_mut()
        .insert(crate::rejection::RenderedRejection::new(rejection.kind()));
    res
}

/// A gRPC trailers-only response with the given status and message.
pub fn grpc_status_response(code: GrpcCode, message: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::new()));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        grpc::GRPC_STATUS,
        HeaderValue::from_static(code.as_wire_str()),
    );
    if let Ok(v) = HeaderValue::from_str(&grpc::encode_message(message)) {
        headers.insert(grpc::GRPC_MESSAGE, v);
    }
    res
}

/// Renders any error from an inner service: a Palisade rejection anywhere in its source
/// chain becomes its own response; anything else becomes a 500 (gRPC UNKNOWN) whose body
/// does not leak the error text, which goes to `tracing` instead (target `palisade::rejection`).
pub fn error_response(err: &(dyn Error + 'static), grpc: bool) -> Response<Full<Bytes>> {
    if let Some(rejection) = find_rejection(err) {
        tracing::debug!(
            target: "palisade::rejection",
            rejection = rejection.kind(),
            status = rejection.status().as_u16(),
            "request rejected"
        );
        return if grpc {
            grpc_rejection_response(rejection)
        } else {
            rejection_response(rejection)
        };
    }
    tracing::error!(
        target: "palisade::rejection",
        error = %err,
        "unhandled error from inner service; answering with a generic internal error"
    );
    if grpc {
        grpc_status_response(GrpcCode::Unknown, "internal error")
    } else {
        internal_error_response()
    }
}

fn internal_error_response() -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
    });
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;
    use crate::rejection::{CircuitOpen, Elapsed, RateLimited};
    use http_body_util::BodyExt;
    use std::time::Duration;

    async fn body_json(res: Response<Full<Bytes>>) -> Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn elapsed_is_504_problem() {
        let res = rejection_response(&Elapsed::new(Duration::from_millis(250)));
        assert_eq!(res.status(), 504);
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(
            body_json(res).await,
            serde_json::json!({
                "type": "about:blank",
                "title": "Gateway Timeout",
                "status": 504,
                "detail": "request timed out after 250ms",
            })
        );
    }

    #[tokio::test]
    async fn circuit_open_has_retry_after_rounded_up() {
        let res = rejection_response(&CircuitOpen::new(Some(Duration::from_millis(4_200))));
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
    }

    #[tokio::test]
    async fn rate_limited_matches_specs_vector() {
        // SPECS §2 "emit on rejection": 429; Retry-After: 5; RateLimit: "default";r=0;t=5;
        // Cache-Control: no-store; body type quota-exceeded with violated-policies.
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit", HeaderValue::from_static("\"default\";r=0;t=5"));
        let r = RateLimited::new(Duration::from_secs(5), headers, vec!["default".into()]);
        let res = rejection_response(&r);
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        assert_eq!(res.headers()["ratelimit"], "\"default\";r=0;t=5");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let body = body_json(res).await;
        assert_eq!(
            body["type"],
            "https://iana.org/assignments/http-problem-types#quota-exceeded"
        );
        assert_eq!(body["violated-policies"], serde_json::json!(["default"]));
    }

    #[tokio::test]
    async fn grpc_trailers_only() {
        let res = grpc_rejection_response(&CircuitOpen::new(Some(Duration::from_secs(2))));
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["grpc-message"], "circuit breaker is open");
        assert_eq!(res.headers()[GRPC_RETRY_PUSHBACK_MS], "2000");
        let res = grpc_rejection_response(&Elapsed::new(Duration::from_secs(1)));
        assert_eq!(res.headers()["grpc-status"], "4");
    }

    #[tokio::test]
    async fn unknown_errors_do_not_leak() {
        let err: BoxError = "database password is hunter2".into();
        let res = error_response(&*err, false);
        assert_eq!(res.status(), 500);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
        let res = error_response(&*err, true);
        assert_eq!(res.headers()["grpc-status"], "2");
        assert_eq!(res.headers()["grpc-message"], "internal error");
    }

    #[test]
    fn protocol_detection() {
        let mut h = HeaderMap::new();
        assert!(!Protocol::Auto.is_grpc(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(Protocol::Auto.is_grpc(&h));
        assert!(!Protocol::Http.is_grpc(&h));
        assert!(Protocol::Grpc.is_grpc(&HeaderMap::new()));
    }
}
