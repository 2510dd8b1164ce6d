//! The verdict on one attempt: return its result, or retry after a delay (budget,
//! deadline, max attempts and server-given delays considered, events emitted).

use std::sync::PoisonError;
use std::time::Duration;

use palisade_core::{BoxError, Deadline};
use tokio::time::Instant;

use crate::backoff::BackoffState;
use crate::budget::Budget;
use crate::events::{GiveUpReason, RetryEvent};
use crate::layer::Shared;
use crate::policy::{Decision, Predicate};

/// The verdict on an attempt's result (which the caller keeps: moving a response through
/// here would copy it twice more).
pub(crate) enum Next {
    /// Return the result.
    Return,
    /// Drop it and retry after this delay.
    Retry(Duration),
}

fn give_up<P>(shared: &Shared<P>, attempts: u32, reason: GiveUpReason) {
    shared.listeners.emit_named(|instance| RetryEvent::GaveUp {
        instance,
        attempts,
        reason,
    });
}

/// The verdict after attempt number `attempts`: return the result, or retry after a delay
/// (`budget` withdrawn, event emitted).
#[inline]
pub(crate) fn decide<P, R>(
    shared: &Shared<P>,
    budget: Option<&dyn Budget>,
    attempts: u32,
    backoff: &mut BackoffState,
    deadline: Option<Deadline>,
    can_retry: bool,
    result: Result<&R, &BoxError>,
) -> Next
where
    P: Predicate<R>,
{
    let decision = shared.predicate.check(result);
    let (reason, after) = match decision {
        Decision::Success => {
            if let Some(b) = budget {
                b.record(true);
            }
            return Next::Return;
        }
        Decision::Return => return Next::Return,
        Decision::DontRetry => {
            if let Some(b) = budget {
                b.record(false);
            }
            if can_retry {
                give_up(shared, attempts, GiveUpReason::Pushback);
            }
            return Next::Return;
        }
        Decision::Retry { reason, after } => {
            if let Some(b) = budget {
                b.record(false);
            }
            (reason, after)
        }
    };
    if !can_retry {
        return Next::Return;
    }
    if attempts >= shared.max_attempts {
        shared
            .listeners
            .emit_named(|instance| RetryEvent::Exhausted { instance, attempts });
        return Next::Return;
    }
    let delay = match after {
        Some(d) if d > shared.backoff.max() => {
            give_up(shared, attempts, GiveUpReason::ServerDelayTooLong);
            return Next::Return;
        }
        Some(d) => {
            backoff.reset();
            d
        }
        None => {
            let mut rng = shared.rng.lock().unwrap_or_else(PoisonError::into_inner);
            backoff.next(&shared.backoff, &mut *rng)
        }
    };
    if let Some(deadline) = deadline
        && Instant::now()
            .checked_add(delay)
            .is_none_or(|at| at >= deadline.instant())
    {
        give_up(shared, attempts, GiveUpReason::Deadline);
        return Next::Return;
    }
    if let Some(b) = budget
        && !b.withdraw()
    {
        shared
            .listeners
            .emit_named(|instance| RetryEvent::BudgetExhausted { instance, attempts });
        return Next::Return;
    }
    shared.listeners.emit_named(|instance| RetryEvent::Attempt {
        instance,
        n: attempts + 1,
        delay,
        reason,
    });
    Next::Retry(delay)
}
