//! The configured jobs, built: each `[[job]]` turned into the scheduler's
//! spec and a runnable job kind.
//!
//! Both the daemon's wiring and the app layer's in-process `jobs run` build
//! jobs, so construction sits below both of them (the app layer must not
//! reach up into the wiring). This is today's construction moved as it is;
//! the job registry replaces its insides.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, JobConfig};
use crate::jobs::SharedJobKind;
use crate::jobs::digest::{DigestJob, ParamError};
use crate::notify::mail::Mailer;
use crate::scheduler::runtime::ScheduledJob;
use crate::scheduler::{JobSpec, Misfire, Schedule, ScheduleError};

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

/// Builds the job kind a configured job names.
pub fn job_kind(
    cfg: &Config,
    job: &JobConfig,
    mailer: &Arc<Mailer>,
) -> Result<SharedJobKind, JobBuildError> {
    let base = cfg.source.parent().unwrap_or(std::path::Path::new("."));
    let err = |e: ParamError| JobBuildError {
        job: job.name.clone(),
        reason: e.to_string(),
    };
    match job.kind.as_str() {
        "digest" => Ok(Arc::new(
            DigestJob::from_params(
                &job.params,
                base,
                cfg.billers.clone(),
                mailer.clone(),
                cfg.practice.name.clone(),
                job.timezone,
            )
            .map_err(err)?,
        )),
        other => Err(JobBuildError {
            job: job.name.clone(),
            reason: format!("unknown job kind `{other}`"),
        }),
    }
}

/// Every configured job, ready for the scheduler.
pub fn scheduled_jobs(
    cfg: &Config,
    mailer: &Arc<Mailer>,
) -> Result<Vec<ScheduledJob>, JobBuildError> {
    cfg.jobs
        .iter()
        .map(|j| {
            let spec = job_spec(j).map_err(|e| JobBuildError {
                job: j.name.clone(),
                reason: e.to_string(),
            })?;
            Ok(ScheduledJob::new(spec, job_kind(cfg, j, mailer)?))
        })
        .collect()
}

/// Builds every job kind from its params; returns every problem, one line
/// each, located at the job's `file:line:column`.
pub fn validate_jobs(cfg: &Config) -> Result<(), String> {
    // Job kinds only hold the mailer; an outbox one stands in so validation
    // opens no connection and needs no async runtime.
    let mailer = Arc::new(Mailer::outbox(
        cfg.mail.from.clone(),
        std::path::Path::new("/nonexistent"),
    ));
    let mut problems = Vec::new();
    for job in &cfg.jobs {
        if let Err(e) = job_kind(cfg, job, &mailer) {
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
