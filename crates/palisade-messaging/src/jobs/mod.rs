//! Async processing: a long request becomes `202 Accepted` + `Location: /jobs/{id}`.
//!
//! [`AsyncJobLayer`] wraps an HTTP service. Each request is answered at once with
//! `202 Accepted`, a `Location: {prefix}/{id}` header and a small JSON body; the request
//! runs in the background (at most `max_concurrency` at a time) and its response is kept in
//! a [`JobStore`]. [`JobStatusService`] serves, from the same store:
//!
//! - `GET {prefix}/{id}`: `200` with `{"id":…,"status":"pending"|"running"|"succeeded"|"failed"}`
//!   (plus `"result"` with the result's path once done, or `"error"` when failed);
//! - `GET {prefix}/{id}/result`: the stored response (status, `content-type`, body) once
//!   done, `202` with the status JSON before that;
//! - `404` for an unknown or expired id, `405` for another method.
//!
//! The store is in memory, or in Redis with the `redis` feature
//! ([`JobStore::in_redis`]: every instance behind a load balancer then serves every job and
//! shares one cap). It is bounded twice: a finished job is kept for `ttl`, and at most
//! `max_jobs` jobs are kept; when full (after dropping expired ones), a new request is
//! refused with `503 Service Unavailable` and `Retry-After`, never queued unboundedly (so is
//! a request while Redis does not answer).
//! Results larger than `max_result_bytes` fail the job instead of being stored.
//!
//! For priority lanes put Palisade's bulkhead (priority queue) around the inner service:
//! the layer only bounds how many jobs run at once.
//!
//! ```
//! use palisade_messaging::jobs::{AsyncJobLayer, JobStatusService, JobStore};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let store = JobStore::new();
//! let report = service_fn(|_req: Request<Full<Bytes>>| async {
//!     tokio::time::sleep(Duration::from_secs(30)).await; // a slow report
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("done"))))
//! });
//! let svc = AsyncJobLayer::new(store.clone()).layer(report);
//! let accepted = svc.oneshot(Request::new(Full::default())).await.unwrap();
//! assert_eq!(accepted.status(), StatusCode::ACCEPTED);
//! let location = accepted.headers()["location"].to_str().unwrap().to_owned();
//!
//! tokio::time::sleep(Duration::from_secs(31)).await;
//! let status = JobStatusService::new(store);
//! let res = status.oneshot(Request::get(format!("{location}/result")).body(()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "done");
//! # }
//! ```

mod layer;
mod status;
mod store;

pub use self::layer::{AsyncJob, AsyncJobLayer};
pub use self::status::JobStatusService;
pub use self::store::{JobState, JobStore};
