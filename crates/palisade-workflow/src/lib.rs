//! Durable workflows over Tower services.
//!
//! TODO: crate docs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod error;
pub mod event_store;
#[cfg(feature = "postgres")]
pub mod pg;

pub use error::{StoreError, VersionConflict};
pub use event_store::{AppendResult, EventStore, ExpectedVersion, MemoryEventStore, NewEvent, RecordedEvent};
