//! The runner's own records: one per run of a job and one per work item, so
//! a crash or a shutdown resumes exactly the work that remains.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Record;

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// Its scheduled time came.
    Schedule,
    /// A catch-up after downtime (misfire = run-once).
    CatchUp,
    /// Someone asked for it (`billd jobs run`).
    Manual,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still running (or the process died; see `resumed_by`).
    Running,
    /// Every item done.
    Succeeded,
    /// Some items failed.
    PartiallyFailed,
    /// The run failed as a whole.
    Failed,
    /// Stopped by shutdown; remaining items resume on restart.
    Interrupted,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    /// `<job>/<time_key(started_at)>`.
    pub id: String,
    /// Job name.
    pub job: String,
    /// The scheduled instant it serves, if any.
    #[serde(default)]
    pub occurrence: Option<DateTime<Utc>>,
    /// Why it started.
    pub trigger: RunTrigger,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End, once ended.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub outcome: RunOutcome,
    /// Work items listed.
    pub items_total: u64,
    /// Items done.
    pub items_done: u64,
    /// Items failed.
    pub items_failed: u64,
    /// Errors (no patient data), capped.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Number of times a restart resumed this run.
    #[serde(default)]
    pub resumes: u32,
}

impl Record for JobRun {
    const COLLECTION: &'static str = "job_runs";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// Progress of one work item of a run, so a crash resumes the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not started.
    Pending,
    /// Started; its effect may or may not have happened.
    InFlight,
    /// Effect done.
    Done,
    /// Failed; the error is in the run.
    Failed,
}

/// One work item of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The run.
    pub run_id: String,
    /// The job kind's key for the item; also its effect's idempotency key.
    pub item: String,
    /// Progress.
    pub state: ItemState,
    /// Attempts made.
    pub attempts: u32,
}

impl WorkItem {
    /// The key for (run, item).
    pub fn key_for(run_id: &str, item: &str) -> String {
        format!("{run_id}#{item}")
    }
}

impl Record for WorkItem {
    const COLLECTION: &'static str = "work_items";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        Self::key_for(&self.run_id, &self.item)
    }
}
