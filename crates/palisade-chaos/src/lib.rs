//! Fault injection for Tower HTTP services: rehearse failure before it happens.
//!
//! [`FaultLayer`] injects, per request, with a probability of its own for each fault:
//!
//! - **latency** before the request goes on: [fixed](Latency::fixed),
//!   [uniform](Latency::uniform) or [normal](Latency::normal) within bounds, at most
//!   [one hour](MAX_DELAY);
//! - an **abort**: an HTTP status (problem+json, rendered by core's rejection rendering as
//!   [`FaultAborted`](error::FaultAborted)) or a gRPC code (trailers-only response), without
//!   calling the inner service;
//! - an **error**: [`FaultInjected`](error::FaultInjected), which `HandleRejections` answers
//!   with 500 / UNKNOWN;
//! - a response **bandwidth limit** (bytes per second).
//!
//! Faults compose: a delayed request can then be aborted (as in Envoy's fault filter).
//!
//! Which requests: all, a seedable random share, only those a [predicate](FaultLayer::when)
//! accepts (a route, or a `palisade-toggle` flag evaluated inside the closure), only in a
//! [time window](FaultLayer::between) or for the [next N requests](FaultLayer::next_requests),
//! or those carrying Envoy's fault headers (`x-envoy-fault-delay-request`,
//! `x-envoy-fault-abort-request`, `x-envoy-fault-abort-grpc-request`,
//! `x-envoy-fault-throughput-response` and their `-percentage` variants) when
//! [header control](headers) is enabled, optionally only from trusted peers.
//!
//! Safety: at most [`max_active`](FaultLayer::max_active) faulted requests are in flight
//! (default 100; the others pass through), and [`FaultHandle::disable`] is a kill switch.
//! Every injected fault is an [`FaultEvent`] and a counter in [`FaultHandle::stats`].
//!
//! A request for which no fault fires goes straight to the inner service without allocating.
//!
//! Traffic record/replay (feature `record`): [`record::RecordLayer`] writes request/response
//! pairs as JSON lines, with redaction, sampling and bounded bodies, and [`replay::replay`]
//! sends them to a candidate and reports the differences (feature `cli` adds the
//! `palisade-replay FILE URL` binary).
//!
//! Put it innermost, just around the handler (or the client), so every resilience layer
//! above it sees the faults as the real thing.
//!
//! # Example
//! ```
//! use palisade_chaos::{FaultLayer, Latency};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let faults = FaultLayer::new()
//!     .seed(7)
//!     .delay(Latency::fixed(Duration::from_millis(300)), 1.0) // every request: +300 ms
//!     .abort(http::StatusCode::SERVICE_UNAVAILABLE, 1.0);     // then 503
//! let handle = faults.handle();
//! let svc = ServiceBuilder::new().layer(faults).service(service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//! }));
//!
//! let started = tokio::time::Instant::now();
//! let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.status(), 503);
//! assert_eq!(started.elapsed(), Duration::from_millis(300));
//!
//! handle.disable(); // kill switch: everything passes through again
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(handle.stats().aborted, 1);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod body;
mod config;
pub mod error;
pub mod events;
mod fault;
pub mod future;
pub mod headers;
mod layer;
#[cfg(feature = "record")]
#[cfg_attr(docsrs, doc(cfg(feature = "record")))]
pub mod record;
#[cfg(feature = "record")]
#[cfg_attr(docsrs, doc(cfg(feature = "record")))]
pub mod replay;
mod rng;
mod service;

pub use body::FaultBody;
pub use config::{
    AbortConfig, DelayConfig, ErrorConfig, FaultConfig, HeaderConfig, MAX_ACTIVE_LIMIT,
    ThrottleConfig,
};
pub use events::{FaultEvent, FaultSource, SkipReason};
pub use fault::{AbortWith, Latency, MAX_DELAY};
pub use headers::HeaderControl;
pub use layer::{FaultHandle, FaultLayer, FaultStats};
pub use service::Fault;
