//! Traffic recording: [`RecordLayer`] writes each request/response pair — method, URI,
//! chosen headers, the first bytes of both bodies, timing — as one JSON line
//! ([`Exchange`]), for [`replay`](crate::replay::replay) against a candidate later.
//!
//! - **Redaction**: `authorization`, `proxy-authorization`, `cookie` and `set-cookie`
//!   values are written as [`REDACTED`], plus any header named with
//!   [`redact`](RecordLayer::redact); [`only_headers`](RecordLayer::only_headers) records
//!   only the headers listed.
//! - **Sampling**: a seedable share of requests ([`sample`](RecordLayer::sample),
//!   [`seed`](RecordLayer::seed)); the others pass through without allocating.
//! - **Bounded**: bodies up to [`max_body`](RecordLayer::max_body) bytes each (the full
//!   length is still written, with `truncated`); the request path never waits on the file:
//!   a bounded queue feeds a writer thread, and an exchange that finds it full is dropped
//!   and counted ([`RecordStats::dropped`]).
//!
//! - **Configuration**: [`RecordConfig`] (deserializable with feature `serde`) builds the
//!   layer from a config file's section, every value validated first.
//!
//! An exchange is written when its response body ends (or is dropped).
//!
//! Requires feature `record`.
//!
//! # Example: record, change the service, replay
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use palisade_chaos::record::{RecordLayer, read_recording};
//! use palisade_chaos::replay::{Difference, ReplayOptions, replay};
//! use std::sync::{Arc, Mutex};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[derive(Clone, Default)] struct Shared(Arc<Mutex<Vec<u8>>>);
//! # impl std::io::Write for Shared {
//! #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
//! #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! # }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let file = Shared::default(); // in real use: RecordLayer::to_file("traffic.jsonl")
//! let recorder = RecordLayer::to_writer(file.clone(), 64).unwrap();
//! let handle = recorder.handle();
//! let v1 = recorder.layer(service_fn(|_req: http::Request<_>| async {
//!     let body = Full::new(Bytes::from_static(br#"{"price":5,"currency":"EUR"}"#));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(body))
//! }));
//! let req = http::Request::builder()
//!     .uri("/quote")
//!     .header("authorization", "Bearer secret")
//!     .body(Full::new(Bytes::new()))
//!     .unwrap();
//! let res = v1.oneshot(req).await.unwrap();
//! res.into_body().collect().await.unwrap(); // the exchange is complete when its body is
//! handle.flush().await.unwrap();
//!
//! let text = file.0.lock().unwrap().clone();
//! assert!(!String::from_utf8_lossy(&text).contains("secret"));
//! let recording = read_recording(&text[..]).unwrap();
//! assert_eq!(recording[0].uri, "/quote");
//!
//! let v2 = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     let body = Full::new(Bytes::from_static(br#"{"price":6,"currency":"EUR"}"#));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(body))
//! });
//! let report = replay(&recording, v2, &ReplayOptions::new()).await;
//! assert_eq!(report.summary().different, 1);
//! assert!(matches!(&report.outcomes[0].differences[..],
//!     [Difference::Field { path, .. }] if path == "/price"));
//! println!("{report}");
//! # }
//! ```

mod body;
mod config;
mod draft;
mod exchange;
mod future;
mod layer;
mod service;
mod writer;

pub use body::RecordBody;
pub use config::{DEFAULT_MAX_BODY, MAX_HEADER_NAMES, MAX_PATH, RecordConfig};
pub use exchange::{Exchange, Message, REDACTED, read_recording, read_recording_file};
pub use future::ResponseFuture;
pub use layer::{DEFAULT_CAPACITY, MAX_BODY, MAX_CAPACITY, RecordHandle, RecordLayer, RecordStats};
pub use service::Record;
