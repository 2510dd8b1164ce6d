//! The saga log entry: where an instance is, its context and its history.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most history entries kept per saga; later ones are counted in
/// [`SagaRecord::history_dropped`].
pub const MAX_HISTORY: usize = 256;

/// Where a saga instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaState {
    /// Running its actions forward.
    Running,
    /// A step failed (or the saga timed out): undoing the done steps in reverse.
    Compensating,
    /// Every action succeeded.
    Done,
    /// Every done step was compensated.
    Compensated,
    /// A compensation kept failing past its attempt limit: a human must look.
    Stuck,
}

impl SagaState {
    /// The snake_case name stored and listed (`"running"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Compensating => "compensating",
            Self::Done => "done",
            Self::Compensated => "compensated",
            Self::Stuck => "stuck",
        }
    }

    /// Whether the saga is over (done, compensated or stuck).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Compensated | Self::Stuck)
    }
}

/// What happened, in a [`HistoryEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// The action is about to be called (logged before the call).
    ActionStarted,
    /// The action succeeded.
    ActionDone,
    /// The action failed or timed out.
    ActionFailed,
    /// The compensation is about to be called.
    CompensationStarted,
    /// The compensation succeeded.
    CompensationDone,
    /// One compensation attempt failed.
    CompensationFailed,
    /// A restart found the step in flight and resumed it.
    Resumed,
}

/// One entry of a saga's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The step's index.
    pub step: usize,
    /// What happened.
    pub kind: HistoryKind,
    /// The error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A saga instance as logged. Queried with
/// [`SagaOrchestrator::get`](crate::saga::SagaOrchestrator::get) and listed by state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaRecord {
    /// The instance's id.
    pub id: String,
    /// The saga's name.
    pub saga: String,
    /// Where it is.
    pub state: SagaState,
    /// Running: the index of the next step (or of the one in flight). Compensating: how
    /// many steps are still to compensate (the next is `step - 1`).
    pub step: usize,
    /// Whether the current step's action or compensation was called and its outcome not
    /// yet logged.
    pub in_flight: bool,
    /// The context as the last completed step left it.
    pub context: Value,
    /// Failed attempts of the current compensation.
    pub compensation_failures: u32,
    /// Time spent running actions so far, across restarts, in milliseconds.
    pub elapsed_ms: u64,
    /// Why the saga is compensating or stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What happened, oldest first (at most [`MAX_HISTORY`] entries).
    pub history: Vec<HistoryEntry>,
    /// Entries not kept past [`MAX_HISTORY`].
    #[serde(default)]
    pub history_dropped: u64,
}

impl SagaRecord {
    pub(crate) fn push(&mut self, step: usize, kind: HistoryKind, error: Option<String>) {
        if self.history.len() < MAX_HISTORY {
            self.history.push(HistoryEntry { step, kind, error });
        } else {
            self.history_dropped += 1;
        }
    }
}
