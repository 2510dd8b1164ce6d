//! gRPC status codes and how they travel in HTTP/2 headers.
//!
//! Palisade does not depend on `tonic` for this: the codes are plain numbers on the wire.
//! Per gRPC's HTTP/2 protocol (`PROTOCOL-HTTP2.md`, "Responses"), `:status` is always 200 and
//! `grpc-status` (decimal, no leading zeros) travels in the trailers, or in the headers of a
//! Trailers-Only response (one HEADERS frame with END_STREAM, as an immediate error is sent);
//! `grpc-message` is UTF-8, percent-encoded, and a bad encoding must not fail decoding. When a
//! client sees no `grpc-status`, it maps the HTTP status (`http-grpc-status-mapping.md`): 400 →
//! INTERNAL, 401 → UNAUTHENTICATED, 403 → PERMISSION_DENIED, 404 → UNIMPLEMENTED, 429, 502,
//! 503, 504 → UNAVAILABLE, anything else → UNKNOWN.

use std::fmt;

use http::{HeaderMap, HeaderName};

/// Name of the header (or trailer) carrying the numeric gRPC status.
pub const GRPC_STATUS: &str = "grpc-status";
/// Name of the header (or trailer) carrying the percent-encoded gRPC message.
pub const GRPC_MESSAGE: &str = "grpc-message";
/// Name of the request header carrying the gRPC deadline.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Name of the trailer (or header) telling a client how long to wait before retrying, in
/// milliseconds (gRFC A6).
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// [`GRPC_STATUS`] as a `HeaderName`: lookups with it skip re-parsing the name.
pub const GRPC_STATUS_HEADER: HeaderName = HeaderName::from_static(GRPC_STATUS);
/// [`GRPC_TIMEOUT`] as a `HeaderName`.
pub const GRPC_TIMEOUT_HEADER: HeaderName = HeaderName::from_static(GRPC_TIMEOUT);
/// [`GRPC_RETRY_PUSHBACK_MS`] as a `HeaderName`.
pub const GRPC_RETRY_PUSHBACK_MS_HEADER: HeaderName =
    HeaderName::from_static(GRPC_RETRY_PUSHBACK_MS);
/// Sent on the retries of a gRPC call: how many attempts came before (gRFC A6).
pub const GRPC_PREVIOUS_RPC_ATTEMPTS: HeaderName =
    HeaderName::from_static("grpc-previous-rpc-attempts");

/// Whether a request is a gRPC call: its `content-type` starts with `application/grpc`
/// (`application/grpc`, `application/grpc+proto`, …).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// assert!(!palisade_core::grpc::is_grpc(&h));
/// h.insert(http::header::CONTENT_TYPE, "application/grpc+proto".parse().unwrap());
/// assert!(palisade_core::grpc::is_grpc(&h));
/// ```
#[inline]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A `grpc-retry-pushback-ms` value (gRFC A6): a non-negative 32-bit integer without
/// leading zeros (or `0`), in milliseconds; anything else (negative, malformed) is `None`,
/// which gRFC A6 reads as "do not retry".
///
/// ```
/// use palisade_core::grpc::parse_pushback;
/// assert_eq!(parse_pushback(b"250"), Some(250));
/// assert_eq!(parse_pushback(b"-1"), None);
/// assert_eq!(parse_pushback(b"007"), None);
/// ```
pub fn parse_pushback(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    let v: i32 = s.parse().ok()?;
    u64::try_from(v).ok()
}

/// A gRPC status code (`grpc/doc/statuscodes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum GrpcCode {
    /// 0: not an error.
    Ok = 0,
    /// 1: the operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// 2: unknown error.
    Unknown = 2,
    /// 3: the client specified an invalid argument.
    InvalidArgument = 3,
    /// 4: the deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// 5: some requested entity was not found.
    NotFound = 5,
    /// 6: the entity that a client attempted to create already exists.
    AlreadyExists = 6,
    /// 7: the caller does not have permission.
    PermissionDenied = 7,
    /// 8: some resource has been exhausted (quota, concurrency).
    ResourceExhausted = 8,
    /// 9: the system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// 10: the operation was aborted, typically due to a concurrency issue.
    Aborted = 10,
    /// 11: the operation was attempted past the valid range.
    OutOfRange = 11,
    /// 12: the operation is not implemented.
    Unimplemented = 12,
    /// 13: internal error.
    Internal = 13,
    /// 14: the service is currently unavailable; retrying may help.
    Unavailable = 14,
    /// 15: unrecoverable data loss or corruption.
    DataLoss = 15,
    /// 16: the request does not have valid authentication credentials.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code for a number, or `None` for a number outside 0..=16.
    pub const fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::Ok,
            1 => Self::Cancelled,
            2 => Self::Unknown,
            3 => Self::InvalidArgument,
            4 => Self::DeadlineExceeded,
            5 => Self::NotFound,
            6 => Self::AlreadyExists,
            7 => Self::PermissionDenied,
            8 => Self::ResourceExhausted,
            9 => Self::FailedPrecondition,
            10 => Self::Aborted,
            11 => Self::OutOfRange,
            12 => Self::Unimplemented,
            13 => Self::Internal,
            14 => Self::Unavailable,
            15 => Self::DataLoss,
            16 => Self::Unauthenticated,
            _ => return None,
        })
    }

    /// Parses the ASCII decimal form used on the wire (`"14"`). Leading zeros, signs and
    /// anything that is not a known code give `None`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [d @ b'0'..=b'9'] => Self::from_u32(u32::from(d - b'0')),
            [b'1', d @ b'0'..=b'6'] => Self::from_u32(10 + u32::from(d - b'0')),
            _ => None,
        }
    }

    /// Reads `grpc-status` from a header map (a trailers-only response carries it in headers).
    /// A missing or malformed value gives `None`.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        if headers.is_empty() {
            return None;
        }
        headers
            .get(&GRPC_STATUS_HEADER)
            .and_then(|v| Self::from_bytes(v.as_bytes()))
    }

    /// The numeric value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The wire form, `"0"` to `"16"`, as a static string (no allocation).
    pub const fn as_wire_str(self) -> &'static str {
        const WIRE: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        WIRE[self as usize]
    }

    /// The canonical upper-case name, e.g. `UNAVAILABLE`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Percent-encodes a `grpc-message` value (PROTOCOL-HTTP2: bytes outside 0x20..=0x7E and `%`
/// are encoded as `%XX`).
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: [u8; 16] = *b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn parses_every_code_and_rejects_noise() {
        for n in 0..=16u32 {
            let code = GrpcCode::from_u32(n).unwrap();
            assert_eq!(
                GrpcCode::from_bytes(code.as_wire_str().as_bytes()),
                Some(code)
            );
            assert_eq!(u32::from(code.as_u8()), n);
        }
        for bad in ["", "17", "01", "-1", "+1", " 1", "1a", "100", "x"] {
            assert_eq!(GrpcCode::from_bytes(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn reads_status_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(GrpcCode::from_headers(&h), None);
        h.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        assert_eq!(GrpcCode::from_headers(&h), Some(GrpcCode::Unavailable));
    }

    #[test]
    fn message_is_percent_encoded() {
        // PROTOCOL-HTTP2: Percent-Byte-Unencoded = %x20-%x24 / %x26-%x7E, so a space may stay
        // as is (SPECS §3's "backend%20down" is an equally valid encoding of the same text).
        assert_eq!(encode_message("backend down"), "backend down");
        assert_eq!(encode_message("100%"), "100%25");
        assert_eq!(encode_message("é"), "%C3%A9");
    }
}
