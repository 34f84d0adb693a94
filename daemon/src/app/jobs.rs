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
    Ok(match crate::jobs::records::latest_runs(db, job, 1)?.pop() {
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
    let plugins = super::plugins::load_configured(app.config(), app.db())?;
    let services = jobset::services(
        app.config(),
        app.db().clone(),
        app.clock.clone(),
        mailer,
        plugins,
    );
    let kind = jobset::job_kind(job, &services)?;
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
    // The newest `limit` runs, through the index: a long history is never
    // read whole.
    let mut out: Vec<HistoryEntry> = crate::jobs::records::latest_runs(db, name, limit)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{START, app_in};
    use crate::app::{DaemonParts, ErrorKind};
    use crate::scheduler::runtime::Scheduler;
    use std::sync::Arc;

    const JOBS: &str = r#"
[[job]]
name = "morning"
kind = "digest"
schedule = "0 7 * * *"
timezone = "America/New_York"

[[job]]
name = "weekly"
kind = "digest"
schedule = "0 9 * * 1"
timezone = "Europe/London"
enabled = false
"#;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn rfc(times: &[DateTime<FixedOffset>]) -> Vec<String> {
        times.iter().map(DateTime::to_rfc3339).collect()
    }

    #[test]
    fn next_gives_fire_times_in_the_jobs_zone_across_dst() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_in(dir.path(), JOBS);
        let times = next(app.config(), "morning", t("2026-03-06T13:00:00Z"), 3).unwrap();
        assert_eq!(
            rfc(&times),
            [
                "2026-03-07T07:00:00-05:00",
                "2026-03-08T07:00:00-04:00",
                "2026-03-09T07:00:00-04:00"
            ]
        );
        let e = next(app.config(), "evening", START.parse().unwrap(), 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(
            e.message(),
            "no job named `evening` (configured: morning, weekly)"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn list_run_and_history_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_in(dir.path(), JOBS);
        let jobs = list(&app).unwrap();
        assert_eq!(jobs.len(), 2);
        let (morning, weekly) = (&jobs[0], &jobs[1]);
        assert_eq!(
            (morning.name.as_str(), morning.timezone.as_str()),
            ("morning", "America/New_York")
        );
        // The clock is at 2026-03-02T14:00Z, 09:00 in New York.
        assert_eq!(
            rfc(&morning.next),
            [
                "2026-03-03T07:00:00-05:00",
                "2026-03-04T07:00:00-05:00",
                "2026-03-05T07:00:00-05:00"
            ]
        );
        assert_eq!(morning.last, LastRun::Never);
        assert!(!weekly.enabled);
        assert_eq!(rfc(&weekly.next[..1]), ["2026-03-09T09:00:00+00:00"]);

        let done = run(&app, "morning").await.unwrap();
        assert_eq!(done.trigger, RunTrigger::Manual);
        assert_eq!(done.outcome, RunOutcome::Succeeded, "{:?}", done.errors);
        assert_eq!(
            (done.items_total, done.items_done),
            (1, 1),
            "lee gets a digest"
        );
        let mail = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .count();
        assert_eq!(mail, 1);

        let jobs = list(&app).unwrap();
        assert_eq!(
            jobs[0].last,
            LastRun::Ran {
                run_id: done.id.clone(),
                outcome: RunOutcome::Succeeded
            }
        );
        assert_eq!(jobs[1].last, LastRun::Never);
        assert_eq!(
            history(&app, "morning", 50).unwrap(),
            [HistoryEntry::Run { run: done }]
        );
        assert!(history(&app, "weekly", 50).unwrap().is_empty());
        let offline = list_without_store(app.config(), app.now()).unwrap();
        assert!(offline.iter().all(|j| j.last == LastRun::Unknown));
        assert_eq!(offline[0].next, jobs[0].next);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unfinished_run_blocks_an_in_process_run() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_in(dir.path(), JOBS);
        let runner = Runner::new(app.db().clone(), app.clock.clone(), SHUTDOWN_GRACE);
        let left = runner.begin("morning", RunTrigger::Schedule, None).unwrap();
        let e = run(&app, "morning").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(
            e.message(),
            format!(
                "job morning has an unfinished run {} (running); start the daemon to resume it first",
                left.id
            )
        );
        assert!(
            !dir.path().join("outbox").exists(),
            "nothing ran, nothing was sent"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_the_daemon_a_run_goes_through_the_scheduler() {
        let dir = tempfile::tempdir().unwrap();
        let local = app_in(dir.path(), JOBS);
        let cfg = Arc::new(local.config().clone());
        let mailer = Arc::new(crate::notify::mail::Mailer::from_config(&cfg.mail).unwrap());
        let runner = Runner::new(local.db().clone(), local.clock.clone(), SHUTDOWN_GRACE);
        let scheduler = Arc::new(Scheduler::new(
            local.db().clone(),
            local.clock.clone(),
            runner,
            jobset::scheduled_jobs(
                &cfg,
                &jobset::services(&cfg, local.db().clone(), local.clock.clone(), mailer, None),
            )
            .unwrap(),
            "test:1".into(),
        ));
        let app = App::in_daemon(
            cfg,
            local.db().clone(),
            local.clock.clone(),
            DaemonParts {
                scheduler,
                plugins: None,
            },
            tokio_util::sync::CancellationToken::new(),
        );
        let done = run(&app, "morning").await.unwrap();
        assert_eq!(
            (done.trigger, done.outcome),
            (RunTrigger::Manual, RunOutcome::Succeeded)
        );
        assert_eq!(history(&app, "morning", 50).unwrap().len(), 1);
        let e = run(&app, "nightly").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        let e = crate::app::plugins::reload(&app).await.unwrap_err();
        assert_eq!(
            e.message(),
            "the daemon started with no plugins configured; restart it to add some"
        );
    }

    #[test]
    fn history_merges_runs_and_unrun_occurrences_oldest_first_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_in(dir.path(), JOBS);
        let db = app.db();
        let occurrence = |at: &str, disposition: Disposition| Occurrence {
            job: "morning".into(),
            scheduled_for: t(at),
            claimed_at: t(at),
            claimed_by: "test:1".into(),
            disposition,
        };
        db.put(&occurrence(
            "2026-03-01T12:00:00Z",
            Disposition::Missed {
                task_id: "T000007".into(),
            },
        ))
        .unwrap();
        db.put(&occurrence(
            "2026-03-03T12:00:00Z",
            Disposition::Skipped {
                reason: "still running".into(),
            },
        ))
        .unwrap();
        db.put(&occurrence(
            "2026-03-02T12:00:00Z",
            Disposition::Ran {
                run_id: "morning/x".into(),
            },
        ))
        .unwrap();
        let runner = Runner::new(db.clone(), app.clock.clone(), SHUTDOWN_GRACE);
        let ran = runner
            .begin(
                "morning",
                RunTrigger::Schedule,
                Some(t("2026-03-02T12:00:00Z")),
            )
            .unwrap();
        let all = history(&app, "morning", 50).unwrap();
        assert_eq!(
            all,
            [
                HistoryEntry::Missed {
                    scheduled_for: t("2026-03-01T12:00:00Z"),
                    task_id: "T000007".into()
                },
                HistoryEntry::Run { run: ran },
                HistoryEntry::Skipped {
                    scheduled_for: t("2026-03-03T12:00:00Z"),
                    reason: "still running".into()
                },
            ],
            "an occurrence that ran shows as its run, not twice"
        );
        assert_eq!(history(&app, "morning", 1).unwrap(), all[2..]);
        let e = history(&app, "nightly", 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
