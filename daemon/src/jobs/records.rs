//! The runner's own records: one per run of a job and one per work item, so
//! a crash or a shutdown resumes exactly the work that remains.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::ops::Bound;

use crate::store::{Db, Record, StoreError, time_key};

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

/// The index of finished runs by end time (for retention).
pub const FINISHED_BY_END: &str = "finished_end";
/// The index of runs by job and start time (`<job>/<time>`).
pub const BY_JOB_STARTED: &str = "job_started";

impl Record for JobRun {
    const COLLECTION: &'static str = "job_runs";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_JOB_STARTED, FINISHED_BY_END];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let mut keys = vec![(
            BY_JOB_STARTED,
            format!("{}/{}", self.job, time_key(self.started_at)),
        )];
        let finished = !matches!(self.outcome, RunOutcome::Running | RunOutcome::Interrupted);
        if let (true, Some(end)) = (finished, self.ended_at) {
            keys.push((FINISHED_BY_END, time_key(end)));
        }
        keys
    }
}

/// The newest `limit` runs of `job`, newest first, read through the index
/// (decodes only what it returns).
pub fn latest_runs(db: &Db, job: &str, limit: usize) -> Result<Vec<JobRun>, StoreError> {
    // Job names are `[A-Za-z0-9_-]+`, so `<job>/` .. `<job>0` spans exactly
    // this job's entries ('0' follows '/').
    let (lo, hi) = (format!("{job}/"), format!("{job}0"));
    Ok(db
        .index_range::<JobRun>(
            BY_JOB_STARTED,
            Bound::Included(&lo),
            Bound::Excluded(&hi),
            Some(limit),
            true,
        )?
        .items)
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
