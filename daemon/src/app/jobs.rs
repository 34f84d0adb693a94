//! Job operations: what is configured and when it fires, running one now,
//! and what past runs and occurrences did.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::{App, AppError, job_named};
use crate::config::{Config, JobConfig};
use crate::jobs::runner::Runner;
use crate::jobs::{JobRun, RunOutcome, RunTrigger};
use crate::jobset::{self, SHUTDOWN_GRACE};
use crate::scheduler::{Disposition, JobSpec, Occurrence};
use crate::store::Db;

/// How many fire times [`list`] gives per job.
pub const LIST_NEXT: usize = 3;

/// A configured job, when it fires next and how it last ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// Job name.
    pub name: String,
    /// Job kind.
    pub kind: String,
    /// The cron expression as configured.
    pub schedule: String,
    /// The IANA timezone the schedule is in.
    pub timezone: String,
    /// Whether the scheduler fires it.
    pub enabled: bool,
    /// The next fire times, in the job's timezone.
    pub next: Vec<DateTime<FixedOffset>>,
    /// How its newest run ended.
    pub last: LastRun,
}

/// How a job's newest run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LastRun {
    /// Not known: the store could not be read.
    Unknown,
    /// The job has never run.
    Never,
    /// Its newest run.
    Ran {
        /// The run.
        run_id: String,
        /// Its outcome (`running` while it runs).
        outcome: RunOutcome,
    },
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum HistoryEntry {
    /// A run.
    Run {
        /// The run's record.
        run: JobRun,
    },
    /// A scheduled occurrence that was skipped (misfire policy, or the job
    /// was still running).
    Skipped {
        /// The instant it was for.
        scheduled_for: DateTime<Utc>,
        /// Why.
        reason: String,
    },
    /// A scheduled occurrence that should have fired and did not.
    Missed {
        /// The instant it was for.
        scheduled_for: DateTime<Utc>,
        /// The task raised for it.
        task_id: String,
    },
}

impl HistoryEntry {
    /// The instant the entry sorts by: the occurrence it served, else when
    /// it started.
    pub fn when(&self) -> DateTime<Utc> {
        match self {
            HistoryEntry::Run { run } => run.occurrence.unwrap_or(run.started_at),
            HistoryEntry::Skipped { scheduled_for, .. }
            | HistoryEntry::Missed { scheduled_for, .. } => *scheduled_for,
        }
    }
}

fn spec(job: &JobConfig) -> Result<JobSpec, AppError> {
    jobset::job_spec(job).map_err(|e| AppError::BadJobs(format!("job {}: {e}", job.name)))
}

fn summary(j: &JobConfig, now: DateTime<Utc>, last: LastRun) -> Result<JobSummary, AppError> {
    let s = spec(j)?;
    let tz = s.schedule.timezone();
    Ok(JobSummary {
        name: j.name.clone(),
        kind: j.kind.clone(),
        schedule: j.schedule.clone(),
        timezone: j.timezone.name().to_string(),
        enabled: j.enabled,
        next: s
            .schedule
            .iter_after(now)
            .take(LIST_NEXT)
            .map(|t| t.with_timezone(&tz).fixed_offset())
            .collect(),
        last,
    })
}

fn last_run(db: &Db, job: &str) -> Result<LastRun, AppError> {
    Ok(match db.scan::<JobRun>(&format!("{job}/"))?.pop() {
        Some(r) => LastRun::Ran {
            run_id: r.id,
            outcome: r.outcome,
        },
        None => LastRun::Never,
    })
}

/// Every configured job with its next fire times and its last outcome.
pub fn list(app: &App) -> Result<Vec<JobSummary>, AppError> {
    let now = app.now();
    app.config()
        .jobs
        .iter()
        .map(|j| summary(j, now, last_run(app.db(), &j.name)?))
        .collect()
}

/// Every configured job with its next fire times after `now`, when the
/// store cannot be read (last outcomes [`LastRun::Unknown`]).
pub fn list_without_store(cfg: &Config, now: DateTime<Utc>) -> Result<Vec<JobSummary>, AppError> {
    cfg.jobs
        .iter()
        .map(|j| summary(j, now, LastRun::Unknown))
        .collect()
}

/// The next `count` fire times of job `name` after `after`, in the job's
/// timezone. Needs only the configuration.
pub fn next(
    cfg: &Config,
    name: &str,
    after: DateTime<Utc>,
    count: usize,
) -> Result<Vec<DateTime<FixedOffset>>, AppError> {
    let s = spec(job_named(cfg, name)?)?;
    let tz = s.schedule.timezone();
    Ok(s.schedule
        .iter_after(after)
        .take(count)
        .map(|t| t.with_timezone(&tz).fixed_offset())
        .collect())
}

/// Runs job `name` now and returns the finished run. Inside the daemon it
/// runs under the scheduler's per-job lock (refused while a run is going);
/// elsewhere it runs in this process, refused while the job has an
/// unfinished run for the daemon to resume. Cancelling the app's token
/// stops it at a checkpoint.
pub async fn run(app: &App, name: &str) -> Result<JobRun, AppError> {
    let job = job_named(app.config(), name)?;
    if let Some(parts) = app.daemon() {
        return parts
            .scheduler
            .run_manual(name, app.cancel_token().clone())
            .await
            .map_err(AppError::RunRefused);
    }
    jobset::validate_jobs(app.config()).map_err(AppError::BadJobs)?;
    let runner = Runner::new(app.db().clone(), app.clock.clone(), SHUTDOWN_GRACE);
    if let Some(r) = runner.unfinished()?.into_iter().find(|r| r.job == name) {
        return Err(AppError::UnfinishedRun {
            job: name.to_string(),
            run: r.id,
            outcome: outcome_name(r.outcome).to_string(),
        });
    }
    let mailer = std::sync::Arc::new(crate::notify::mail::Mailer::from_config(
        &app.config().mail,
    )?);
    let kind = jobset::job_kind(app.config(), job, &mailer)?;
    let run = runner.begin(name, RunTrigger::Manual, None)?;
    Ok(runner
        .execute(
            &run.id,
            kind,
            job.concurrency.max(1),
            app.cancel_token().clone(),
        )
        .await?)
}

/// The runs and unrun occurrences of job `name`, oldest first; at most the
/// newest `limit`.
pub fn history(app: &App, name: &str, limit: usize) -> Result<Vec<HistoryEntry>, AppError> {
    job_named(app.config(), name)?;
    let db = app.db();
    let mut out: Vec<HistoryEntry> = db
        .scan::<JobRun>(&format!("{name}/"))?
        .into_iter()
        .map(|run| HistoryEntry::Run { run })
        .collect();
    for o in db.scan::<Occurrence>(&format!("{name}/"))? {
        match o.disposition {
            Disposition::Ran { .. } => {}
            Disposition::Skipped { reason } => out.push(HistoryEntry::Skipped {
                scheduled_for: o.scheduled_for,
                reason,
            }),
            Disposition::Missed { task_id } => out.push(HistoryEntry::Missed {
                scheduled_for: o.scheduled_for,
                task_id,
            }),
        }
    }
    out.sort_by_key(HistoryEntry::when);
    let skip = out.len().saturating_sub(limit);
    out.drain(..skip);
    Ok(out)
}

/// The lower-case name of a run outcome (`partially-failed`, ...).
pub fn outcome_name(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Running => "running",
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::PartiallyFailed => "partially-failed",
        RunOutcome::Failed => "failed",
        RunOutcome::Interrupted => "interrupted",
    }
}

/// The lower-case name of a run trigger (`schedule`, `catch-up`, `manual`).
pub fn trigger_name(t: RunTrigger) -> &'static str {
    match t {
        RunTrigger::Schedule => "schedule",
        RunTrigger::CatchUp => "catch-up",
        RunTrigger::Manual => "manual",
    }
}
