//! The configured jobs, built: each `[[job]]` turned into the scheduler's
//! spec and a runnable job kind.
//!
//! Both the daemon's wiring and the app layer's in-process `jobs run` build
//! jobs, so construction sits below both of them (the app layer must not
//! reach up into the wiring). Kinds come from the job
//! registry ([`crate::jobs::registry`]); each is built with the daemon's
//! [`Services`].

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::{Config, JobConfig};
use crate::jobs::SharedJobKind;
use crate::jobs::registry::{self, JobSetup, Services};
use crate::notify::mail::Mailer;
use crate::plugin::{PluginRegistry, TracingAudit};
use crate::scheduler::runtime::ScheduledJob;
use crate::scheduler::{JobSpec, Misfire, Schedule, ScheduleError};
use crate::store::Db;

/// How long in-flight work items get to finish after SIGTERM (or Ctrl-C on
/// an in-process run) before they are left for the next start (systemd's
/// TimeoutStopSec must exceed this).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A job's definition is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job}: {reason}")]
pub struct JobBuildError {
    /// The job.
    pub job: String,
    /// What is wrong.
    pub reason: String,
}

/// The scheduler's view of a configured job.
pub fn job_spec(job: &JobConfig) -> Result<JobSpec, ScheduleError> {
    Ok(JobSpec {
        name: job.name.clone(),
        kind: job.kind.clone(),
        schedule: Schedule::parse(&job.schedule, job.timezone)?,
        misfire: match job.misfire {
            crate::config::Misfire::RunOnce => Misfire::RunOnce,
            crate::config::Misfire::Skip => Misfire::Skip,
        },
        catch_up_window: job.catch_up_window,
        enabled: job.enabled,
        concurrency: job.concurrency.max(1),
    })
}

/// What every job kind may use: the store, clock, mailer and loaded
/// plugins, with the practice and billers from `cfg`.
pub fn services(
    cfg: &Config,
    db: Db,
    clock: SharedClock,
    mailer: Arc<Mailer>,
    plugins: Option<Arc<PluginRegistry>>,
) -> Services {
    Services {
        db,
        clock,
        mailer,
        plugins,
        audit: Arc::new(TracingAudit),
        practice: cfg.practice.clone(),
        billers: cfg.billers.clone(),
        notify: Arc::new(cfg.notify.clone()),
        base_dir: cfg
            .source
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf(),
    }
}

/// Builds the job kind a configured job names, through the job registry.
pub fn job_kind(job: &JobConfig, services: &Services) -> Result<SharedJobKind, JobBuildError> {
    let setup = JobSetup {
        name: job.name.clone(),
        timezone: job.timezone,
    };
    registry::build(&job.kind, &job.params, &setup, services).map_err(|e| JobBuildError {
        job: job.name.clone(),
        reason: e.to_string(),
    })
}

/// Every configured job, ready for the scheduler.
pub fn scheduled_jobs(
    cfg: &Config,
    services: &Services,
) -> Result<Vec<ScheduledJob>, JobBuildError> {
    cfg.jobs
        .iter()
        .map(|j| {
            let spec = job_spec(j).map_err(|e| JobBuildError {
                job: j.name.clone(),
                reason: e.to_string(),
            })?;
            Ok(ScheduledJob::new(spec, job_kind(j, services)?))
        })
        .collect()
}

/// Builds every job kind from its params; returns every problem, one line
/// each, located at the job's `file:line:column`.
pub fn validate_jobs(cfg: &Config) -> Result<(), String> {
    // An outbox mailer and an in-memory store stand in, so validation opens
    // no connection, touches no store and needs no async runtime.
    let mailer = Arc::new(Mailer::outbox(
        cfg.mail.from.clone(),
        std::path::Path::new("/nonexistent"),
    ));
    let services = services(
        cfg,
        Db::in_memory(),
        Arc::new(crate::clock::SystemClock),
        mailer,
        None,
    );
    let mut problems = Vec::new();
    for job in &cfg.jobs {
        if let Err(e) = job_kind(job, &services) {
            problems.push(format!(
                "{}:{}:{}: job[{}]: {e}",
                job.location.file.display(),
                job.location.line,
                job.location.column,
                job.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
