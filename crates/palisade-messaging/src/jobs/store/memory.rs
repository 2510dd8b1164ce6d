//! The in-memory backend, bounded by count and TTL.

use super::{Job, JobState, Limits, StoredResponse};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

/// Jobs in a mutex-guarded map: a lookup or an update holds it for a map operation,
/// never across an `.await`.
#[derive(Debug, Default)]
pub(super) struct Memory {
    jobs: Mutex<HashMap<String, Job>>,
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers job `id` as pending; `false` when the store is full of unexpired jobs.
    pub(super) fn create(&self, id: &str, limits: &Limits) -> bool {
        let now = Instant::now();
        let mut jobs = self.lock();
        if jobs.len() >= limits.max_jobs {
            jobs.retain(|_, j| j.expires.is_none_or(|e| e > now));
            if jobs.len() >= limits.max_jobs {
                return false;
            }
        }
        jobs.insert(
            id.to_owned(),
            Job {
                state: JobState::Pending,
                response: None,
                error: None,
                expires: None,
            },
        );
        true
    }

    pub(super) fn running(&self, id: &str) {
        if let Some(j) = self.lock().get_mut(id) {
            j.state = JobState::Running;
        }
    }

    pub(super) fn finish(
        &self,
        id: &str,
        outcome: Result<StoredResponse, String>,
        limits: &Limits,
    ) {
        let expires = Some(Instant::now() + limits.ttl);
        if let Some(j) = self.lock().get_mut(id) {
            if matches!(j.state, JobState::Succeeded | JobState::Failed) {
                return;
            }
            match outcome {
                Ok(r) => {
                    j.state = JobState::Succeeded;
                    j.response = Some(r);
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.error = Some(e);
                }
            }
            j.expires = expires;
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<Job> {
        let now = Instant::now();
        let mut jobs = self.lock();
        match jobs.get(id) {
            Some(j) if j.expires.is_some_and(|e| e <= now) => {
                jobs.remove(id);
                None
            }
            Some(j) => Some(j.clone()),
            None => None,
        }
    }
}
