//! Durable workflows over Tower services.
//!
//! TODO: crate docs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

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
