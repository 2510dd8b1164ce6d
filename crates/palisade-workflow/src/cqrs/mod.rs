//! CQRS command handlers: a tower [`Service`] that loads an aggregate, decides, and appends.
//!
//! The write side is a [`CommandHandler`]: each [`Command`] names an aggregate (its stream)
//! and carries the domain command. The handler loads the aggregate, calls
//! [`Aggregate::decide`], and appends the events expecting the version it loaded. When
//! another writer got there first the append fails with a
//! [`VersionConflict`](crate::VersionConflict); the handler reloads and decides again up to
//! [`retry_conflicts`](CommandHandler::retry_conflicts) times, then returns the conflict
//! boxed as an [`AnyRejection`](palisade_core::AnyRejection), which
//! [`HandleRejections`](palisade_core::HandleRejections) answers with **409**.
//!
//! The read side is whatever [`Projection`](crate::projection::Projection)s build;
//! palisade-traffic's CQRS split sends reads and writes to the two.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use palisade_core::BoxError;
use tower_service::Service;

use crate::aggregate::{Aggregate, AggregateRepository, NoSnapshots, SnapshotStore};
use crate::error::StoreError;
use crate::event_store::EventStore;

/// Most reload-and-decide attempts after a conflict.
pub const MAX_CONFLICT_RETRIES: u32 = 10;

/// A command for the aggregate of stream `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<C> {
    /// The aggregate's stream.
    pub id: String,
    /// The domain command.
    pub command: C,
}

impl<C> Command<C> {
    /// `command` for aggregate `id`.
    pub fn new(id: impl Into<String>, command: C) -> Self {
        Self {
            id: id.into(),
            command,
        }
    }
}

/// What an accepted command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The aggregate's version after the command.
    pub version: u64,
    /// How many events it appended (0: the command changed nothing).
    pub appended: usize,
    /// Reload-and-decide rounds caused by conflicts.
    pub conflicts: u32,
}

/// The future of a [`CommandHandler`] call.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<CommandOutcome, BoxError>> + Send>>;

/// Handles [`Command`]s for aggregates of type `A` (see the [module docs](self)).
///
/// Always ready; clones share the store.
pub struct CommandHandler<A, S, N = NoSnapshots> {
    repo: AggregateRepository<S, N>,
    retries: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A, S: Clone, N: Clone> Clone for CommandHandler<A, S, N> {
    fn clone(&self) -> Self {
        Self {
            repo: self.repo.clone(),
            retries: self.retries,
            _aggregate: PhantomData,
        }
    }
}

impl<A, S: fmt::Debug, N: fmt::Debug> fmt::Debug for CommandHandler<A, S, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandHandler")
            .field("repo", &self.repo)
            .field("retries", &self.retries)
            .finish()
    }
}

impl<A: Aggregate, S: EventStore, N: SnapshotStore> CommandHandler<A, S, N> {
    /// A handler over `repo` that retries a conflict once.
    pub fn new(repo: AggregateRepository<S, N>) -> Self {
        Self {
            repo,
            retries: 1,
            _aggregate: PhantomData,
        }
    }

    /// Reload-and-decide rounds after a conflict (0: report the first conflict), clamped to
    /// [`MAX_CONFLICT_RETRIES`].
    #[must_use]
    pub fn retry_conflicts(mut self, retries: u32) -> Self {
        self.retries = retries.min(MAX_CONFLICT_RETRIES);
        self
    }

    /// The repository.
    pub fn repository(&self) -> &AggregateRepository<S, N> {
        &self.repo
    }
}

impl<A: Aggregate, S: EventStore, N: SnapshotStore> Service<Command<A::Command>>
    for CommandHandler<A, S, N>
where
    A::Command: Sync,
{
    type Response = CommandOutcome;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Command<A::Command>) -> Self::Future {
        let repo = self.repo.clone();
        let retries = self.retries;
        Box::pin(async move {
            let mut conflicts = 0;
            loop {
                let mut loaded = repo
                    .load::<A>(&req.id)
                    .await
                    .map_err(StoreError::into_box_error)?;
                let events = loaded.state.decide(&req.command).map_err(Into::into)?;
                if events.is_empty() {
                    return Ok(CommandOutcome {
                        version: loaded.version,
                        appended: 0,
                        conflicts,
                    });
                }
                let appended = events.len();
                match repo.save(&req.id, &mut loaded, events).await {
                    Ok(r) => {
                        return Ok(CommandOutcome {
                            version: r.version,
                            appended,
                            conflicts,
                        });
                    }
                    Err(StoreError::Conflict(_)) if conflicts < retries => conflicts += 1,
                    Err(e) => return Err(e.into_box_error()),
                }
            }
        })
    }
}
