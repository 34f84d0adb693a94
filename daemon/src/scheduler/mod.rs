//! The scheduler: when each job runs, and the guarantee that every scheduled
//! occurrence is dealt with exactly once.
//!
//! - [`schedule`]: cron expressions read in a job's IANA timezone, with the
//!   daylight-saving rules a billing office expects.
//! - [`catchup`]: what to do about occurrences that passed while billd was
//!   down (misfire policy `run-once` or `skip`), as a pure plan.
//! - [`runtime`]: the per-job loop. Before a run starts its occurrence
//!   `(job, instant)` is claimed with an atomic insert-if-absent in the store,
//!   so neither a restart nor a second process can run it twice, and a job
//!   never has two runs at once.

pub mod catchup;
pub mod runtime;
pub mod schedule;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use crate::jobs::occurrence::{self, Disposition, Occurrence};
use crate::store::Record;
pub use schedule::{Schedule, ScheduleError};

/// What to do about occurrences missed while the daemon was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Misfire {
    /// Run once for the latest missed occurrence, if it is within the
    /// catch-up window; the others are recorded as superseded.
    RunOnce,
    /// Run none; record each as skipped.
    Skip,
}

/// A job as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Unique job name.
    pub name: String,
    /// Job kind (`digest`, ...).
    pub kind: String,
    /// When it fires.
    pub schedule: Schedule,
    /// Misfire policy after downtime.
    pub misfire: Misfire,
    /// How late a catch-up may still run.
    pub catch_up_window: Duration,
    /// Disabled jobs never fire on schedule (manual runs still work).
    pub enabled: bool,
    /// Work items in flight at once.
    pub concurrency: usize,
}

/// How far a job's schedule has been dealt with: every occurrence at or
/// before `through` has been fired, skipped or reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCursor {
    /// Job name.
    pub job: String,
    /// The latest occurrence dealt with (or the moment the job was first seen).
    pub through: DateTime<Utc>,
}

impl Record for JobCursor {
    const COLLECTION: &'static str = "job_cursors";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.job.clone()
    }
}
