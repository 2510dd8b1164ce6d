//! The orchestrator: drives saga instances forward or back, logging each move.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::Listeners;
use tokio::time::Instant;
use tower::ServiceExt;

use super::definition::{OnUnknown, Saga, SagaContext, StepRequest};
use super::error::SagaError;
use super::events::SagaEvent;
use super::record::{HistoryKind, SagaRecord, SagaState};
use super::store::{MAX_LIST, SagaStore};

/// Longest saga id, in bytes.
pub const MAX_SAGA_ID: usize = 128;

/// Runs instances of one [`Saga`] over a [`SagaStore`]. Clones share the definition and the
/// store; any number of instances run concurrently and independently (each call drives one
/// instance). Resume an instance in one process at a time: the log has no lease.
pub struct SagaOrchestrator<C, St> {
    saga: Arc<Saga<C>>,
    store: St,
    listeners: Listeners<SagaEvent>,
}

impl<C, St: Clone> Clone for SagaOrchestrator<C, St> {
    fn clone(&self) -> Self {
        Self {
            saga: self.saga.clone(),
            store: self.store.clone(),
            listeners: self.listeners.clone(),
        }
    }
}

impl<C, St: std::fmt::Debug> std::fmt::Debug for SagaOrchestrator<C, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaOrchestrator")
            .field("saga", &self.saga)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

enum Failure {
    Error(String),
    Timeout,
    SagaTimeout,
}

impl<C: SagaContext, St: SagaStore> SagaOrchestrator<C, St> {
    /// An orchestrator for `saga` logging to `store`.
    pub fn new(saga: Saga<C>, store: St) -> Self {
        let listeners = Listeners::new().named(saga.name.clone());
        Self {
            saga: Arc::new(saga),
            store,
            listeners,
        }
    }

    /// Adds a listener for this orchestrator's [`SagaEvent`]s.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&SagaEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }

    /// The saga log.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// Starts instance `id` with `context` and drives it to its end: `Done`, `Compensated`
    /// or `Stuck`. The record is logged before the first action runs.
    pub async fn start(&self, id: &str, context: C) -> Result<SagaRecord, SagaError> {
        if id.is_empty() || id.len() > MAX_SAGA_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SagaError::InvalidId);
        }
        let record = SagaRecord {
            id: id.to_owned(),
            saga: self.saga.name.clone(),
            state: SagaState::Running,
            step: 0,
            in_flight: false,
            context: serde_json::to_value(&context)?,
            compensation_failures: 0,
            elapsed_ms: 0,
            error: None,
            history: Vec::new(),
            history_dropped: 0,
        };
        if !self.store.create(&record).await? {
            return Err(SagaError::AlreadyExists);
        }
        self.listeners
            .emit_named(|instance| SagaEvent::Started { instance });
        self.drive(record).await
    }

    /// Resumes instance `id` from its log and drives it to its end (a final instance is
    /// returned as it is).
    pub async fn resume(&self, id: &str) -> Result<SagaRecord, SagaError> {
        let record = self.store.load(id).await?.ok_or(SagaError::NotFound)?;
        if record.saga != self.saga.name || record.step > self.saga.steps.len() {
            return Err(SagaError::Mismatch);
        }
        self.drive(record).await
    }

    /// Resumes every unfinished instance of this saga (running or compensating), one after
    /// the other, and returns their final records. Call it at start-up.
    pub async fn recover(&self) -> Result<Vec<SagaRecord>, SagaError> {
        let mut out = Vec::new();
        for state in [SagaState::Running, SagaState::Compensating] {
            for r in self.store.list(&self.saga.name, state, MAX_LIST).await? {
                out.push(self.resume(&r.id).await?);
            }
        }
        Ok(out)
    }

    /// The logged record of instance `id`: state, step, context and history.
    pub async fn get(&self, id: &str) -> Result<Option<SagaRecord>, SagaError> {
        Ok(self.store.load(id).await?)
    }

    /// Up to `max` instances of this saga in `state`.
    pub async fn list(&self, state: SagaState, max: usize) -> Result<Vec<SagaRecord>, SagaError> {
        Ok(self.store.list(&self.saga.name, state, max).await?)
    }

    fn request(&self, record: &SagaRecord, step: usize) -> Result<StepRequest<C>, SagaError> {
        let name = &self.saga.steps[step].name;
        Ok(StepRequest {
            saga_id: record.id.clone(),
            step: name.clone(),
            idempotency_key: format!("{}/{name}", record.id),
            context: serde_json::from_value(record.context.clone())?,
        })
    }

    async fn save(
        &self,
        record: &mut SagaRecord,
        base_ms: u64,
        run_start: Instant,
        counting: bool,
    ) -> Result<(), SagaError> {
        if counting {
            let ran = u64::try_from(run_start.elapsed().as_millis()).unwrap_or(u64::MAX);
            record.elapsed_ms = base_ms.saturating_add(ran);
        }
        self.store.save(record).await?;
        Ok(())
    }

    async fn drive(&self, mut record: SagaRecord) -> Result<SagaRecord, SagaError> {
        let run_start = Instant::now();
        let base_ms = record.elapsed_ms;
        let saga_timeout = self.saga.timeout;
        let steps = &self.saga.steps;
        loop {
            match record.state {
                SagaState::Done | SagaState::Compensated | SagaState::Stuck => return Ok(record),
                SagaState::Running if record.step == steps.len() => {
                    record.state = SagaState::Done;
                    self.save(&mut record, base_ms, run_start, true).await?;
                    self.listeners
                        .emit_named(|instance| SagaEvent::Done { instance });
                }
                SagaState::Running => {
                    let i = record.step;
                    let step = &steps[i];
                    if record.in_flight {
                        record.push(i, HistoryKind::Resumed, None);
                        if step.on_unknown == OnUnknown::Compensate {
                            Self::fail(
                                &mut record,
                                i + 1,
                                &Failure::Error("outcome unknown after restart".into()),
                            );
                            self.save(&mut record, base_ms, run_start, true).await?;
                            continue;
                        }
                    } else {
                        record.in_flight = true;
                        record.push(i, HistoryKind::ActionStarted, None);
                        self.save(&mut record, base_ms, run_start, true).await?;
                    }
                    let spent = Duration::from_millis(base_ms) + run_start.elapsed();
                    let remaining = saga_timeout.saturating_sub(spent);
                    let outcome = if remaining.is_zero() {
                        Err(Failure::SagaTimeout)
                    } else {
                        let limit = step.timeout.min(remaining);
                        let req = self.request(&record, i)?;
                        match tokio::time::timeout(limit, step.action.clone().oneshot(req)).await {
                            Ok(Ok(ctx)) => Ok(ctx),
                            Ok(Err(e)) => Err(Failure::Error(e.to_string())),
                            Err(_) if limit < step.timeout => Err(Failure::SagaTimeout),
                            Err(_) => Err(Failure::Timeout),
                        }
                    };
                    match outcome {
                        Ok(ctx) => {
                            record.context = serde_json::to_value(&ctx)?;
                            record.step = i + 1;
                            record.in_flight = false;
                            record.push(i, HistoryKind::ActionDone, None);
                            self.save(&mut record, base_ms, run_start, true).await?;
                            self.listeners.emit_named(|instance| SagaEvent::StepDone {
                                instance,
                                step: step.name.clone(),
                            });
                        }
                        Err(failure) => {
                            // An error means the step did not apply; a timeout leaves it
                            // unknown, so its compensation runs too.
                            let owed = if matches!(failure, Failure::Error(_)) {
                                i
                            } else {
                                i + 1
                            };
                            let reason = match failure {
                                Failure::Error(_) => "error",
                                Failure::Timeout => "timeout",
                                Failure::SagaTimeout => "saga_timeout",
                            };
                            Self::fail(&mut record, owed, &failure);
                            self.save(&mut record, base_ms, run_start, true).await?;
                            self.listeners.emit_named(|instance| SagaEvent::StepFailed {
                                instance,
                                step: step.name.clone(),
                                reason,
                            });
                        }
                    }
                }
                SagaState::Compensating if record.step == 0 => {
                    record.state = SagaState::Compensated;
                    self.save(&mut record, base_ms, run_start, false).await?;
                    self.listeners
                        .emit_named(|instance| SagaEvent::Compensated { instance });
                }
                SagaState::Compensating => {
                    let j = record.step - 1;
                    let step = &steps[j];
                    if !record.in_flight {
                        record.in_flight = true;
                        record.push(j, HistoryKind::CompensationStarted, None);
                        self.save(&mut record, base_ms, run_start, false).await?;
                    }
                    let req = self.request(&record, j)?;
                    let result =
                        tokio::time::timeout(step.timeout, step.compensation.clone().oneshot(req))
                            .await;
                    let error = match result {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => Some(format!("compensation timed out after {:?}", step.timeout)),
                    };
                    match error {
                        None => {
                            record.step = j;
                            record.in_flight = false;
                            record.compensation_failures = 0;
                            record.push(j, HistoryKind::CompensationDone, None);
                            self.save(&mut record, base_ms, run_start, false).await?;
                        }
                        Some(e) => {
                            record.compensation_failures += 1;
                            record.push(j, HistoryKind::CompensationFailed, Some(e.clone()));
                            let attempts = record.compensation_failures;
                            if attempts >= self.saga.compensation_attempts {
                                record.state = SagaState::Stuck;
                                record.error = Some(e);
                                self.save(&mut record, base_ms, run_start, false).await?;
                                self.listeners.emit_named(|instance| SagaEvent::Stuck {
                                    instance,
                                    step: step.name.clone(),
                                    attempts,
                                });
                            } else {
                                self.save(&mut record, base_ms, run_start, false).await?;
                                let factor = 1_u32 << (attempts - 1).min(5);
                                tokio::time::sleep(self.saga.compensation_backoff * factor).await;
                            }
                        }
                    }
                }
            }
        }
    }

    fn fail(record: &mut SagaRecord, owed: usize, failure: &Failure) {
        let error = match failure {
            Failure::Error(e) => e.clone(),
            Failure::Timeout => "step timed out".to_owned(),
            Failure::SagaTimeout => "saga timed out".to_owned(),
        };
        record.push(record.step, HistoryKind::ActionFailed, Some(error.clone()));
        record.state = SagaState::Compensating;
        record.step = owed;
        record.in_flight = false;
        record.compensation_failures = 0;
        record.error = Some(error);
    }
}
