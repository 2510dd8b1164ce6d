//! Header names more than one layer reads or writes, declared once.

use http::HeaderName;

/// `Idempotency-Key` (IETF `draft-ietf-httpapi-idempotency-key-header`): the request header
/// naming one logical operation. The idempotency layer keys on it; the retry layer retries
/// a POST or PATCH that carries it.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `Idempotent-Replayed: true`: set by the idempotency layer on a stored response it
/// replays (read by the metrics layer to count replays).
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// `x-palisade-throttled: 1`: set on the response rendered from a
/// [`Throttled`](crate::Throttled) rejection, so that a caller can tell a request its own
/// client shed (client-side adaptive throttling) from a server's 503.
pub const THROTTLED: HeaderName = HeaderName::from_static("x-palisade-throttled");

pub use crate::grpc::{
    GRPC_PREVIOUS_RPC_ATTEMPTS, GRPC_RETRY_PUSHBACK_MS_HEADER, GRPC_STATUS_HEADER,
    GRPC_TIMEOUT_HEADER,
};
