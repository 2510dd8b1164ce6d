//! # palisade-policy: the policy plane
//!
//! Per-route Palisade stacks from one file (TOML, JSON, YAML with feature `yaml`), composed
//! in the canonical order by construction, validated with every problem's full field path,
//! hot-reloaded with state kept, and explained.
//!
//! ```
//! use palisade_policy::{PolicyHandle, PolicySet};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let set = PolicySet::from_toml(r#"
//!     [[routes]]
//!     match = { path = "/search" }
//!     rate_limit = { quotas = [{ name = "search", limit = 1, window = "1m" }] }
//!
//!     [fallback]
//! "#).unwrap();
//! let handle = PolicyHandle::new(set);
//! let app = service_fn(|_req: http::Request<axum_core::body::Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(axum_core::body::Body::empty()))
//! });
//! let svc = handle.layer().layer(app);
//! let call = |path: &str| svc.clone().oneshot(http::Request::get(path).body(axum_core::body::Body::empty()).unwrap());
//! assert_eq!(call("/search").await.unwrap().status(), 200);
//! assert_eq!(call("/search").await.unwrap().status(), 429); // the route's quota
//! assert_eq!(call("/other").await.unwrap().status(), 200);  // the fallback has no limit
//! # }
//! ```
//!
//! # The file
//!
//! `defaults`, named `policies`, `routes` (first match wins), a mandatory `fallback`, and
//! `clients` (outbound policies per upstream, applied by [`PolicyClient`]). Each section (`timeout`, `rate_limit`, `breaker`, `bulkhead`,
//! `idempotency`, `gate`, `cache`, `fault`, and for clients `retry`, `attempt_timeout`) is the serde form of
//! that pattern crate's config (`TimeoutConfig`, `RateLimitConfig`, …), built with that
//! crate's own constructor. A route inherits field by field: route > its named `policy` >
//! `defaults`; nested tables are replaced whole and `section = false` removes an inherited
//! layer (see [`merge`]). Route matchers are described in [`matcher`].
//!
//! The same file configures the `palisade-gateway` binary: its top-level `listeners`,
//! `upstreams` and `admin` sections and each route's `forward` table are checked here for
//! their shape only (the gateway validates their contents) and otherwise ignored. Programs
//! that wrap a different service in each route's stack use [`PolicySet::route_index`] and
//! [`PolicySet::route_stack`].
//!
//! The file's JSON Schema is generated from these types (feature `schema`:
//! `json_schema::json_schema`, `palisade-policy schema`) and checked in as
//! `palisade-policy.schema.json`, so editors validate and complete a file as it is typed.
//!
//! In code the same thing is a builder: [`Policy::builder`] takes each pattern crate's typed
//! config and checks it with that crate's constructor, and [`PolicySet::builder`] takes
//! `defaults`, named policies, routes, the fallback and clients (see [`PolicySetBuilder`]).
//!
//! A bad file is rejected with every problem, each at the place the value was written:
//! `routes[2].breaker.failure_rate_threshold: must be a percentage in (0, 100] (got 120)`;
//! a value inherited from a named policy is reported at `policies.NAME.…`, once.
//!
//! # The canonical server order, and why
//!
//! Outermost first. A route gets only the layers it configures; an absent layer is not in
//! the stack at all.
//!
//! 1. **rejections** (`HandleRejections`): every refusal below becomes a response (429, 503,
//!    504, 409 …) with `Retry-After`; the stack is infallible.
//! 2. **rate limit**: the cheapest refusal, and it must count every attempt, including those
//!    that the gate, the breaker or the bulkhead would refuse, or a client could probe for
//!    free. Its RateLimit fields on successes follow the route's `response_headers`.
//! 3. **flag gate**: a switched-off route answers 404 before using any budget below.
//! 4. **cache** (`palisade-cache`, `GET`/`HEAD` only): below the rate limit, so a hit
//!    still counts against the caller's quota, and below the gate, so a switched-off route
//!    serves nothing from it; above everything that costs (timeout, breaker, bulkhead
//!    slot, the handler), so a hit costs none of it and a miss goes through all of it, a
//!    background revalidation included. It never meets idempotency on one request (that
//!    acts on `POST`/`PATCH`), so their order is free. Servers only.
//! 5. **total timeout**: the caller's budget (its own value, `grpc-timeout` or a deadline
//!    header) covers everything the route does from here. The `Deadline` extension is
//!    inserted only if `insert_deadline = true` is written: nothing in a server stack reads
//!    it (retry and outbound clients do), so by default it costs nothing.
//! 6. **idempotency**: inside the timeout so a replayed answer also respects the caller's
//!    budget, and outside the breaker and bulkhead so a replay never takes a slot or counts
//!    as a call. **Nothing that can cancel sits between idempotency and the handler**: the
//!    only layers below it are the breaker (which refuses before the call or records after
//!    it) and the bulkhead (whose queue wait ends before the handler starts). The timeout
//!    above answers the client but cannot cut a handler that has started below idempotency
//!    short of dropping the idempotency future; letting the started handler finish detached
//!    is the idempotency layer's job (the exactly-once work). Since the order is fixed
//!    here, no file can put a timeout, a hedge or a shadow between them.
//! 7. **breaker**: records the outcomes of calls that really reach the handler; refusals
//!    above (429, 404, 504 before the call) are not the handler's failures.
//! 8. **bulkhead**: a slot is held only by a request that is about to run, until its
//!    response body ends; a request refused above never takes one.
//! 9. **fault** (`palisade-chaos`): innermost, standing in for the handler. Envoy puts its
//!    fault filter first in the chain, in front of the router, because there it stands in
//!    for the *upstream*; here the equivalent place is just above the handler, so that the
//!    breaker, the bulkhead, the timeout and idempotency meet an injected delay or abort
//!    exactly as they would a slow or failing handler (a chaos experiment that skipped them
//!    would prove nothing). It cannot cancel a started handler: an abort answers instead of
//!    calling it, a delay waits before calling it, and a throttle only slows the response
//!    body, so the "nothing that cancels below idempotency" rule holds.
//!
//! The client order is: total timeout (deadline) → retry (+ budget) → breaker → attempt
//! timeout (writing `grpc-timeout`) → bulkhead → transport; why each step is where it is,
//! and how a request finds its client policy, is in [`client`].
//!
//! # Reload
//!
//! [`PolicyHandle::reload`] swaps a new set in atomically (arc-swap). A route (by `name`, or
//! by its matcher when unnamed) whose effective settings did not change keeps its layers and
//! their state; a changed one starts afresh while requests in flight finish on the old stack.
//!
//! # Explain and lint
//!
//! [`PolicySet::explain`] returns each route's and client's effective stack in order with
//! every value and its origin; [`PolicySet::warnings`] lists legal but risky settings
//! ([`lint::lint`]). The `palisade-policy` binary runs both: `palisade-policy check FILE`,
//! `palisade-policy explain FILE`. [`PolicyHandle::explain_service`] serves the live set's
//! explanation as JSON on an admin route (`/palisade/policies`).
//!
//! # Integrations
//!
//! - Any `http` service: `handle.layer().layer(service)` ([`PolicyLayer`]); for tonic, match
//!   on the gRPC method path (`path = "/pkg.Service/Method"`).
//! - axum: put the whole `Router` under the layer and serve it as it is,
//!   `axum::serve(listener, ServiceExt::<Request>::into_make_service(handle.layer().layer(router)))`:
//!   [`PolicyService`] answers with axum's `Body`, so no `map_response` is needed. Path
//!   templates use axum's syntax (`/orders/{id}`, `{*rest}`) and match as axum's do; axum's
//!   own 404s for unmatched paths go through the fallback's stack.
//! - Outbound: `handle.client_layer().layer(transport)` ([`PolicyClient`]) around
//!   hyper-util's client (or any service of `http::Request<Body>`).
//! - Reload triggers: [`PolicyHandle::reload`], [`PolicyHandle::watch_file`] (polling),
//!   (feature `watch`) `PolicyHandle::watch_file_events` (file-system notifications through
//!   `notify`, debounced) and (feature `sighup`) `PolicyHandle::reload_on_sighup`.
//!
//! # Costs
//!
//! Routes are indexed by the literal first path segment their matcher requires (an FNV hash
//! of that segment), so dispatch does not test every route's matcher: with 1,000 routes,
//! finding one takes about 40 ns. Each route's stack is built once and shared; a request
//! calls a clone of it inside its one boxed response future, so dispatch allocates nothing
//! over a hand-built boxed stack. A reload of 1,000 routes builds only what changed and
//! frees the replaced set on a background thread (`palisade-policy-drop`). Measured
//! figures are in the crate's README.
//!
//! # Names
//!
//! A route's name (its `name`, else its matcher, e.g. `path /orders/{id}`) is the instance
//! name of its layers, for their events and metrics, so two routes' bulkheads are two
//! series: characters other than visible ASCII become `_` (`path_/orders/{id}`) and it is
//! cut at 128. A section that sets its own `name` keeps it. Clients are named the same way.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod admin;
mod build;
mod builder;
pub mod client;
mod error;
mod explain;
mod index;
#[cfg(feature = "schema")]
#[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
pub mod json_schema;
mod layer;
pub mod lint;
pub mod matcher;
pub mod merge;
#[cfg(feature = "watch")]
mod notify_watch;
mod pattern;
mod policy;
mod reload;
mod routes;
pub mod schema;
mod set;
mod source;
mod stack;
mod watch;

pub use admin::ExplainService;
pub use builder::{PolicyBuilder, PolicySetBuilder};
pub use client::{ClientFuture, ClientStack, PolicyClient, PolicyClientLayer};
pub use error::{PolicyError, Problem};
pub use layer::{PolicyLayer, PolicyService, ResponseFuture};
pub use matcher::Matcher;
pub use pattern::{Glob, PathTemplate};
pub use policy::{Policy, Section};
pub use reload::PolicyHandle;
pub use set::{Loader, PolicySet};
pub use source::Format;
pub use stack::RouteStack;
