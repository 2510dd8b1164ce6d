//! Durable workflows over Tower services: event sourcing with CQRS, sagas, two-phase
//! commit and an anti-corruption layer, each step a `Service` you can wrap in Palisade's
//! policies, with an in-memory store always and PostgreSQL behind feature `postgres`.
//!
//! | module | pattern | what it gives |
//! |---|---|---|
//! | [`event_store`] | event sourcing | [`EventStore`]: append with an [`ExpectedVersion`] (a [`VersionConflict`] is **409**), read a stream, read all streams in global order |
//! | [`aggregate`] | event sourcing | [`Aggregate`] folded from its events, snapshots every N events |
//! | [`projection`] | CQRS read side | [`ProjectionRunner`] following the global order with a persisted checkpoint |
//! | [`cqrs`] | CQRS write side | [`CommandHandler`], a `Service` that loads, decides and appends |
//! | [`saga`] | saga | [`SagaOrchestrator`](saga::SagaOrchestrator): steps with compensations, logged before and after each step, resumed after a crash |
//! | [`twopc`] | two-phase commit | [`Coordinator`](twopc::Coordinator) with a decision log, prepare timeout and recovery |
//! | [`translate`] | anti-corruption layer | [`TranslateLayer`](translate::TranslateLayer): typed translation, a failure is **422** naming the field |
//! | `pg` | PostgreSQL | `migrate(&client, &schema)` and the `Pg*` stores (feature `postgres`, over `tokio-postgres`) |
//!
//! These are libraries over services rather than middleware in a request's path (except
//! [`translate`] and [`cqrs`], which are services): put timeouts, retries and breakers
//! around each step's service, and the command handler behind `HandleRejectionsLayer` so a
//! conflict becomes a 409.
//!
//! # Example
//!
//! ```
//! use palisade_workflow::{Aggregate, AggregateRepository, Command, CommandHandler, MemoryEventStore};
//! use palisade_core::rejection::find_rejection;
//! use serde::{Deserialize, Serialize};
//! use tower::ServiceExt;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Counter { value: u32 }
//! #[derive(Serialize, Deserialize)]
//! struct Added { by: u32 }
//!
//! impl Aggregate for Counter {
//!     type Event = Added;
//!     type Command = u32;
//!     type Error = &'static str;
//!     fn event_type(_: &Added) -> &'static str { "added" }
//!     fn apply(&mut self, e: Added) { self.value += e.by; }
//!     fn decide(&self, by: &u32) -> Result<Vec<Added>, &'static str> {
//!         if self.value + by > 10 { return Err("a counter stops at 10"); }
//!         Ok(vec![Added { by: *by }])
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = MemoryEventStore::new();
//! let repo = AggregateRepository::new(store.clone());
//! let handler = CommandHandler::<Counter, _>::new(repo.clone());
//!
//! let out = handler.clone().oneshot(Command::new("counter-1", 4)).await.unwrap();
//! assert_eq!(out.version, 1);
//! let err = handler.clone().oneshot(Command::new("counter-1", 7)).await.unwrap_err();
//! assert_eq!(err.to_string(), "a counter stops at 10");
//!
//! // Two writers decide on the same version: the second append is a 409 conflict.
//! let mut a = repo.load::<Counter>("counter-1").await.unwrap();
//! let mut b = repo.load::<Counter>("counter-1").await.unwrap();
//! repo.save("counter-1", &mut a, vec![Added { by: 1 }]).await.unwrap();
//! let conflict = repo.save("counter-1", &mut b, vec![Added { by: 1 }]).await.unwrap_err();
//! let boxed = conflict.into_box_error();
//! assert_eq!(find_rejection(&*boxed).unwrap().status(), 409);
//! assert_eq!(repo.load::<Counter>("counter-1").await.unwrap().state.value, 5);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod aggregate;
pub mod cqrs;
pub mod error;
pub mod event_store;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod projection;
pub mod saga;
pub mod translate;
pub mod twopc;

pub use aggregate::{Aggregate, AggregateRepository, Loaded};
pub use cqrs::{Command, CommandHandler, CommandOutcome};
pub use error::{StoreError, VersionConflict};
pub use event_store::{
    AppendResult, EventStore, ExpectedVersion, MemoryEventStore, NewEvent, RecordedEvent,
};
pub use projection::{Projection, ProjectionRunner};
