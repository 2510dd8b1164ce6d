//! Client-side adaptive throttling (Google SRE book, "Handling Overload"): a client that
//! sees its upstream reject most requests starts rejecting requests itself, locally,
//! before they cost the upstream anything.
//!
//! Over a sliding [`window`](AdaptiveThrottleLayer::window) the layer counts *requests*
//! (every call, the locally shed ones included) and *accepts* (calls the upstream
//! answered without refusing them for overload, per the [`OverloadClassifier`]). Each new
//! request is shed with probability
//!
//! ```text
//! max(0, (requests − k · accepts) / (requests + 1))
//! ```
//!
//! so while the upstream accepts everything nothing is shed, and under overload the
//! client sends about `k` × what the upstream accepts (`k` = 2 by default). A shed request
//! fails at once with core's [`Throttled`](palisade_core::Throttled) rejection, which
//! [`HandleRejections`](palisade_core::HandleRejections) renders as
//! `503` + `x-palisade-throttled: 1` (gRPC UNAVAILABLE); a
//! [`ThrottleEvent::Throttled`](crate::events::ThrottleEvent) is emitted, which
//! `palisade-metrics` counts as `palisade_adaptive_throttle_throttled_total`.
//!
//! Shedding starts once accepts fall below `requests / k` over the window (after a sudden
//! total outage: after `window × (1 − 1/k)`, half the window with `k` = 2). Recovery is
//! gradual by design: with no accepts left in the window the client still sends about one
//! request per window, and each accepted one lets more through, so the sent rate grows
//! geometrically (e-fold a little slower than every `window / k`) until accepts reach
//! `requests / k` again. Cap the
//! rejection probability with [`max_probability`](AdaptiveThrottleLayer::max_probability)
//! to keep probing at a fixed share and recover faster.
//!
//! It works for any client service: `hyper_util`'s client (`http::Request<B>`) and
//! `reqwest::Client` (`reqwest::Request`) alike, since it reads only the response.
//!
//! # Where it goes
//!
//! Outside the [`RetryLayer`](crate::RetryLayer), so that retries are shed too and a
//! retried request counts once, or inside it to count every attempt (each retry is then a
//! request of its own, as in the SRE book's per-attempt accounting). A shed request is a
//! local refusal: the retry layer does not retry it.
//!
//! # Cost
//!
//! Per request: one clock read, a load of each of the `2 × buckets` window slots, one
//! compare-and-swap for the request and one for the accept, one atomic add for a draw
//! (only when the probability is above 0), and the `Arc` clone the response future holds.
//! No lock, no allocation (`benches/retry.rs`, row `adaptive-throttle`).
//!
//! # Example
//! ```
//! use palisade_retry::throttle::AdaptiveThrottleLayer;
//! use palisade_core::Throttled;
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! // An upstream refusing everything with 503.
//! let upstream = service_fn(move |_req: http::Request<()>| {
//!     c.fetch_add(1, Ordering::SeqCst);
//!     async { Ok::<_, palisade_core::BoxError>(http::Response::builder().status(503).body(()).unwrap()) }
//! });
//! let throttle = AdaptiveThrottleLayer::new().seed(1);
//! let svc = throttle.layer(upstream);
//! let mut shed = 0;
//! for _ in 0..1000 {
//!     match svc.clone().oneshot(http::Request::new(())).await {
//!         Err(e) if e.is::<Throttled>() => shed += 1,
//!         _ => {}
//!     }
//! }
//! // With no accepts, the n-th request goes out with probability 1/n: about ln(1000) ≈ 7.
//! let sent = calls.load(Ordering::SeqCst);
//! assert!(sent < 20, "{sent}");
//! assert_eq!(shed + sent, 1000);
//! assert_eq!(throttle.stats().requests, 1000);
//! # }
//! ```

mod classify;
mod config;
pub mod future;
mod layer;
mod service;
mod window;

pub use self::classify::OverloadClassifier;
pub use self::config::{AdaptiveThrottleConfig, BUCKETS_RANGE, K_RANGE, WINDOW_RANGE};
pub use self::layer::{AdaptiveThrottleLayer, ThrottleStats};
pub use self::service::AdaptiveThrottle;
