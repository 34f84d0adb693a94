//! The running scheduler: one loop per enabled job, catch-up after downtime,
//! resumption of runs a crash or shutdown interrupted, and clean shutdown.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::catchup::{self, SkipReason};
use super::{Disposition, Occurrence};
use super::{JobCursor, JobSpec, Misfire};
use crate::clock::SharedClock;
use crate::domain::Priority;
use crate::domain::task::{self as tasks, NewTask};
use crate::jobs::runner::Runner;
use crate::jobs::{JobError, SharedJobKind};
use crate::jobs::{JobRun, RunTrigger};
use crate::store::{Db, Record, StoreError};

/// How late a firing may be and still count as on time (timer jitter, a busy
/// machine). Later than this, the misfire policy decides.
const ON_TIME: chrono::Duration = chrono::Duration::seconds(2);

/// The longest single sleep, so a wall-clock jump (suspend, NTP step) is
/// noticed within this long.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// A configured job with its kind and its run lock.
pub struct ScheduledJob {
    /// What and when.
    pub spec: JobSpec,
    /// How.
    pub kind: SharedJobKind,
    lock: Arc<Mutex<()>>,
}

impl ScheduledJob {
    /// Pairs a spec with its kind.
    pub fn new(spec: JobSpec, kind: SharedJobKind) -> Self {
        Self {
            spec,
            kind,
            lock: Arc::new(Mutex::new(())),
        }
    }
}

/// Errors that stop the scheduler from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A job failed to start.
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Runs every configured job on its schedule.
pub struct Scheduler {
    db: Db,
    clock: SharedClock,
    runner: Runner,
    jobs: Vec<Arc<ScheduledJob>>,
    identity: String,
    runs: TaskTracker,
}

impl Scheduler {
    /// A scheduler over `jobs`; `identity` names this process in claims.
    pub fn new(
        db: Db,
        clock: SharedClock,
        runner: Runner,
        jobs: Vec<ScheduledJob>,
        identity: String,
    ) -> Self {
        Self {
            db,
            clock,
            runner,
            jobs: jobs.into_iter().map(Arc::new).collect(),
            identity,
            runs: TaskTracker::new(),
        }
    }

    /// The job named `name`.
    pub fn job(&self, name: &str) -> Option<&Arc<ScheduledJob>> {
        self.jobs.iter().find(|j| j.spec.name == name)
    }

    /// Runs job `name` now (`billd jobs run` against a running daemon) and
    /// returns the finished run. Refused while the job has a run going.
    pub async fn run_manual(
        &self,
        name: &str,
        cancel: CancellationToken,
    ) -> Result<JobRun, String> {
        let job = self
            .job(name)
            .cloned()
            .ok_or_else(|| format!("no job named `{name}`"))?;
        let guard = job
            .lock
            .clone()
            .try_lock_owned()
            .map_err(|_| format!("job {name} has a run going now; try again when it ends"))?;
        let run = self
            .runner
            .begin(name, RunTrigger::Manual, None)
            .map_err(|e| e.to_string())?;
        tracing::info!(job = %name, run = %run.id, "manual run started");
        let runner = self.runner.clone();
        // Tracked like scheduled runs, so shutdown waits for its checkpoint.
        let handle = self.runs.spawn(async move {
            let _running = guard;
            runner
                .execute(&run.id, job.kind.clone(), job.spec.concurrency, cancel)
                .await
        });
        handle
            .await
            .map_err(|e| format!("run task failed: {e}"))?
            .map_err(|e| e.to_string())
    }

    /// Runs until `cancel` fires: resumes interrupted runs, catches up after
    /// downtime, then fires each job on time. On cancel, stops firing, lets
    /// running jobs checkpoint, and returns when they have.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) -> Result<(), SchedulerError> {
        self.resume_unfinished(&cancel).await?;
        let now = self.clock.now();
        for job in &self.jobs {
            self.startup(job, now, &cancel).await?;
        }
        let loops = TaskTracker::new();
        for job in self.jobs.iter().filter(|j| j.spec.enabled) {
            let (me, job, cancel) = (self.clone(), job.clone(), cancel.clone());
            loops.spawn(async move {
                if let Err(e) = me.job_loop(&job, &cancel).await {
                    tracing::error!(job = %job.spec.name, error = %e, "job loop stopped");
                }
            });
        }
        loops.close();
        cancel.cancelled().await;
        loops.wait().await;
        self.runs.close();
        self.runs.wait().await;
        self.db.flush()?;
        Ok(())
    }

    async fn resume_unfinished(&self, cancel: &CancellationToken) -> Result<(), SchedulerError> {
        for run in self.runner.unfinished()? {
            let Some(job) = self.job(&run.job).cloned() else {
                tracing::warn!(run = %run.id, job = %run.job, "unfinished run of a job no longer configured");
                continue;
            };
            let guard = job.lock.clone().lock_owned().await;
            tracing::info!(run = %run.id, "resuming interrupted run");
            self.spawn_run(job, run.id, guard, cancel.clone());
        }
        Ok(())
    }

    fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.db.get::<JobCursor>(job)?.map(|c| c.through))
    }

    fn set_cursor(&self, job: &str, through: DateTime<Utc>) -> Result<(), StoreError> {
        self.db.put(&JobCursor {
            job: job.to_string(),
            through,
        })
    }

    /// Deals with what happened while the daemon was down.
    async fn startup(
        &self,
        job: &Arc<ScheduledJob>,
        now: DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> Result<(), SchedulerError> {
        let name = &job.spec.name;
        let Some(through) = self.cursor(name)? else {
            // A new job owes nothing for the time before it existed.
            self.set_cursor(name, now)?;
            return Ok(());
        };
        if !job.spec.enabled {
            self.set_cursor(name, now)?;
            return Ok(());
        }
        self.check_claimed_without_run(job, through)?;
        let plan = catchup::plan(
            &job.spec.schedule,
            through,
            now,
            job.spec.misfire,
            job.spec.catch_up_window,
        );
        self.apply_plan(job, &plan, RunTrigger::CatchUp, cancel)
            .await?;
        if let Some(latest) = plan.latest {
            self.set_cursor(name, latest)?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// A crash between claiming an occurrence and recording its run leaves an
    /// occurrence with no run: tell a biller.
    fn check_claimed_without_run(
        &self,
        job: &ScheduledJob,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(occ) = self
            .db
            .get::<Occurrence>(&Occurrence::key_for(&job.spec.name, at))?
        else {
            return Ok(());
        };
        if let Disposition::Ran { run_id } = &occ.disposition
            && self.db.get::<JobRun>(run_id)?.is_none()
        {
            let task = self.raise_missed(job, &[at], 0, Priority::Normal)?;
            self.db.modify::<Occurrence, _>(&Record::key(&occ), |o| {
                o.disposition = Disposition::Missed {
                    task_id: task.clone(),
                };
            })?;
        }
        Ok(())
    }

    async fn apply_plan(
        &self,
        job: &Arc<ScheduledJob>,
        plan: &catchup::CatchUpPlan,
        trigger: RunTrigger,
        cancel: &CancellationToken,
    ) -> Result<(), SchedulerError> {
        let task_id = if plan.raise_task {
            let missed: Vec<DateTime<Utc>> = plan.skipped.iter().map(|s| s.0).collect();
            let priority = if job.spec.misfire == Misfire::Skip {
                Priority::Low
            } else {
                Priority::Normal
            };
            Some(self.raise_missed(job, &missed, plan.not_recorded, priority)?)
        } else {
            None
        };
        for (at, reason) in &plan.skipped {
            let disposition = match (&task_id, reason) {
                (Some(task_id), SkipReason::OutsideWindow) => Disposition::Missed {
                    task_id: task_id.clone(),
                },
                _ => Disposition::Skipped {
                    reason: reason.text().to_string(),
                },
            };
            self.claim(job, *at, disposition)?;
        }
        if plan.not_recorded > 0 {
            tracing::warn!(job = %job.spec.name, count = plan.not_recorded, "missed occurrences counted but not recorded individually");
        }
        if let Some(at) = plan.run {
            self.fire(job, at, trigger, cancel).await?;
        }
        Ok(())
    }

    fn raise_missed(
        &self,
        job: &ScheduledJob,
        missed: &[DateTime<Utc>],
        uncounted: usize,
        priority: Priority,
    ) -> Result<String, StoreError> {
        let tz = job.spec.schedule.timezone();
        let first = missed.first().copied().unwrap_or_else(|| self.clock.now());
        let last = missed.last().copied().unwrap_or(first);
        let n = missed.len() + uncounted;
        let subject = if n <= 1 {
            format!(
                "job {} did not run at {}",
                job.spec.name,
                first.with_timezone(&tz).to_rfc3339()
            )
        } else {
            format!(
                "job {} did not run at {} ({n} scheduled runs missed, the last at {})",
                job.spec.name,
                first.with_timezone(&tz).to_rfc3339(),
                last.with_timezone(&tz).to_rfc3339()
            )
        };
        let (task, _) = tasks::raise(
            &self.db,
            self.clock.now(),
            NewTask {
                kind: "missed-run".into(),
                subject,
                priority,
                due: None,
                assignee: None,
                payer: None,
                dedupe_key: format!("missed/{}/{}", job.spec.name, crate::store::time_key(first)),
            },
        )?;
        Ok(task.id)
    }

    /// Claims an occurrence; false if someone already had.
    fn claim(
        &self,
        job: &ScheduledJob,
        at: DateTime<Utc>,
        disposition: Disposition,
    ) -> Result<bool, StoreError> {
        self.db.insert_new(&Occurrence {
            job: job.spec.name.clone(),
            scheduled_for: at,
            claimed_at: self.clock.now(),
            claimed_by: self.identity.clone(),
            disposition,
        })
    }

    /// Fires one occurrence: claims it, then starts a run unless the job is
    /// still running.
    async fn fire(
        &self,
        job: &Arc<ScheduledJob>,
        at: DateTime<Utc>,
        trigger: RunTrigger,
        cancel: &CancellationToken,
    ) -> Result<(), SchedulerError> {
        let name = &job.spec.name;
        let Ok(guard) = job.lock.clone().try_lock_owned() else {
            if self.claim(
                job,
                at,
                Disposition::Skipped {
                    reason: "the previous run was still running".into(),
                },
            )? {
                tracing::warn!(job = %name, "occurrence skipped: previous run still running");
                tasks::raise(
                    &self.db,
                    self.clock.now(),
                    NewTask {
                        kind: "missed-run".into(),
                        subject: format!(
                            "job {name} did not run at {}: its previous run was still running",
                            at.with_timezone(&job.spec.schedule.timezone()).to_rfc3339()
                        ),
                        priority: Priority::Normal,
                        due: None,
                        assignee: None,
                        payer: None,
                        dedupe_key: format!("overrun/{name}"),
                    },
                )?;
            }
            return Ok(());
        };
        let run_id = Runner::run_id(name, Some(at), self.clock.now());
        if !self.claim(
            job,
            at,
            Disposition::Ran {
                run_id: run_id.clone(),
            },
        )? {
            tracing::info!(job = %name, at = %at, "occurrence already claimed; not running it again");
            return Ok(());
        }
        let run = self.runner.begin(name, trigger, Some(at))?;
        tracing::info!(job = %name, run = %run.id, ?trigger, "run started");
        self.spawn_run(job.clone(), run.id, guard, cancel.clone());
        Ok(())
    }

    fn spawn_run(
        &self,
        job: Arc<ScheduledJob>,
        run_id: String,
        guard: OwnedMutexGuard<()>,
        cancel: CancellationToken,
    ) {
        let runner = self.runner.clone();
        self.runs.spawn(async move {
            let _running = guard;
            if let Err(e) = runner
                .execute(&run_id, job.kind.clone(), job.spec.concurrency, cancel)
                .await
            {
                tracing::error!(run = %run_id, error = %e, "run failed");
            }
        });
    }

    async fn job_loop(
        &self,
        job: &Arc<ScheduledJob>,
        cancel: &CancellationToken,
    ) -> Result<(), SchedulerError> {
        let name = &job.spec.name;
        loop {
            let through = self.cursor(name)?.unwrap_or_else(|| self.clock.now());
            let Some(next) = job.spec.schedule.next_after(through) else {
                tracing::warn!(job = %name, "schedule never fires again");
                cancel.cancelled().await;
                return Ok(());
            };
            loop {
                let now = self.clock.now();
                if now >= next {
                    break;
                }
                let wait = (next - now).to_std().unwrap_or_default().min(MAX_SLEEP);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if cancel.is_cancelled() {
                return Ok(());
            }
            let now = self.clock.now();
            let on_time_from = (now - ON_TIME).max(through);
            match job.spec.schedule.last_between(on_time_from, now) {
                Some(at) => {
                    // The on-time run covers every earlier instant not yet
                    // dealt with (a per-second schedule on a busy machine).
                    let (earlier, _) =
                        job.spec
                            .schedule
                            .between(through, now, catchup::MAX_RECORDED);
                    for t in earlier.into_iter().filter(|t| *t != at) {
                        let reason = SkipReason::Superseded.text().into();
                        self.claim(job, t, Disposition::Skipped { reason })?;
                    }
                    self.fire(job, at, RunTrigger::Schedule, cancel).await?;
                }
                None => {
                    // Woken too late for every instant (suspend, a clock
                    // step): the misfire policy decides, as after downtime.
                    let late = catchup::plan(
                        &job.spec.schedule,
                        through,
                        now,
                        job.spec.misfire,
                        job.spec.catch_up_window,
                    );
                    self.apply_plan(job, &late, RunTrigger::CatchUp, cancel)
                        .await?;
                }
            }
            // Every occurrence up to now has been fired, skipped or reported.
            let dealt_with = job.spec.schedule.last_between(through, now).unwrap_or(next);
            self.set_cursor(name, dealt_with)?;
            self.db.flush()?;
        }
    }
}
