//! A claimed scheduled occurrence `(job, instant)` and what became of it:
//! the scheduler's bookkeeping, kept beside the runner's so retention
//! (the prune job) can reach both.
//!
//! Claiming an occurrence with an atomic insert-if-absent is what stops two
//! processes or a restart from running one occurrence twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Record, time_key};

/// What became of a scheduled occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Disposition {
    /// A run was started for it.
    Ran {
        /// The run.
        run_id: String,
    },
    /// Skipped by the misfire policy or because the job was still running.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Should have fired and did not; a task was raised.
    Missed {
        /// The task raised.
        task_id: String,
    },
}

/// A claimed scheduled occurrence: (job, instant). Claiming it with an atomic
/// insert-if-absent is what stops two processes or a restart from running one
/// occurrence twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    /// Job name.
    pub job: String,
    /// The scheduled instant.
    pub scheduled_for: DateTime<Utc>,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
    /// Who claimed it (`host:pid`).
    pub claimed_by: String,
    /// What became of it.
    pub disposition: Disposition,
}

impl Occurrence {
    /// The key for (job, instant).
    pub fn key_for(job: &str, scheduled_for: DateTime<Utc>) -> String {
        format!("{job}/{}", time_key(scheduled_for))
    }
}

/// The index of occurrences by scheduled instant (for retention).
pub const BY_SCHEDULED: &str = "scheduled";

impl Record for Occurrence {
    const COLLECTION: &'static str = "occurrences";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_SCHEDULED];
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        vec![(BY_SCHEDULED, time_key(self.scheduled_for))]
    }
    fn key(&self) -> String {
        Self::key_for(&self.job, self.scheduled_for)
    }
}
