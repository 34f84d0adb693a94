//! The daemon: wires configuration, store, mail and jobs together and runs
//! the scheduler until SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, JobConfig};
use crate::jobs::SharedJobKind;
use crate::jobs::digest::{DigestJob, ParamError};
use crate::jobs::runner::Runner;
use crate::notify::mail::{MailError, Mailer};
use crate::plugin::{Limit, PluginEvents, PluginRegistry, TracingAudit};
use crate::scheduler::runtime::{ScheduledJob, Scheduler, SchedulerError};
use crate::scheduler::{JobSpec, Misfire, Schedule, ScheduleError};
use crate::store::{Db, StoreError};

/// How long in-flight work items get to finish after SIGTERM before they
/// are left for the next start (systemd's TimeoutStopSec must exceed this).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The store could not be opened or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mail transport is unusable.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// A job's definition is unusable.
    #[error("job {job}: {reason}")]
    Job {
        /// The job.
        job: String,
        /// What is wrong.
        reason: String,
    },
    /// The scheduler failed.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A configured plugin could not be loaded (pin, signature, settings).
    #[error("{0}")]
    Plugins(String),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Opens the store the configuration names.
pub fn open_store(cfg: &Config) -> Result<Db, StoreError> {
    Db::open_sled(&cfg.store.path, &cfg.store.key_file, cfg.store.cache_bytes)
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
) -> Result<SharedJobKind, DaemonError> {
    let base = cfg.source.parent().unwrap_or(std::path::Path::new("."));
    let err = |e: ParamError| DaemonError::Job {
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
        other => Err(DaemonError::Job {
            job: job.name.clone(),
            reason: format!("unknown job kind `{other}`"),
        }),
    }
}

/// Every configured job, ready for the scheduler.
pub fn scheduled_jobs(
    cfg: &Config,
    mailer: &Arc<Mailer>,
) -> Result<Vec<ScheduledJob>, DaemonError> {
    cfg.jobs
        .iter()
        .map(|j| {
            let spec = job_spec(j).map_err(|e| DaemonError::Job {
                job: j.name.clone(),
                reason: e.to_string(),
            })?;
            Ok(ScheduledJob::new(spec, job_kind(cfg, j, mailer)?))
        })
        .collect()
}

/// This process in occurrence claims: `host:pid`.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Runs the daemon until SIGTERM or SIGINT, then shuts down cleanly.
pub async fn run(cfg: Config, db: Db) -> Result<(), DaemonError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let mailer = Arc::new(Mailer::from_config(&cfg.mail)?);
    let jobs = scheduled_jobs(&cfg, &mailer)?;
    let runner = Runner::new(db.clone(), clock.clone(), SHUTDOWN_GRACE);
    let plugins = load_plugins(&cfg, &db)?;
    let scheduler = Arc::new(Scheduler::new(db.clone(), clock, runner, jobs, identity()));
    let cancel = CancellationToken::new();
    spawn_signal_watch(cancel.clone(), cfg.source.clone(), plugins.clone())?;
    let cfg = Arc::new(cfg);
    let control = tokio::spawn(crate::control::serve(
        cfg.clone(),
        db.clone(),
        scheduler.clone(),
        plugins,
        cancel.clone(),
    ));
    tracing::info!(
        jobs = cfg.jobs.len(),
        store = %cfg.store.path.display(),
        "billd started"
    );
    scheduler.run(cancel).await?;
    match control.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "control socket failed; CLI verbs could not reach the daemon")
        }
        Err(e) => tracing::warn!(error = %e, "control socket task failed"),
    }
    db.flush()?;
    tracing::info!("billd stopped");
    Ok(())
}

/// Loads the configured plugins (verifying pins and signatures) into the
/// registry the daemon's jobs call through; `None` when none are configured.
pub fn load_plugins(cfg: &Config, db: &Db) -> Result<Option<Arc<PluginRegistry>>, DaemonError> {
    if cfg.plugins.is_empty() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let registry = crate::cli::configured_plugins(cfg)
        .load_registry(
            db.raw().clone(),
            Some(db.sealing_key()),
            Arc::new(TracingAudit),
            Arc::new(LimitTasks { db: db.clone() }),
        )
        .map_err(|e| DaemonError::Plugins(format!("{e:#}")))?;
    tracing::info!(
        plugins = cfg.plugins.len(),
        ms = started.elapsed().as_millis() as u64,
        "plugins loaded"
    );
    Ok(Some(Arc::new(registry)))
}

/// Turns a plugin's first breach of a limit into a biller task (kind
/// `plugin-limit`), once per plugin and limit however often it recurs. The
/// task names the plugin and the limit only, never the data.
struct LimitTasks {
    db: Db,
}

impl PluginEvents for LimitTasks {
    fn limit_reached(&self, plugin: &str, limit: Limit) {
        let task = crate::tasks::NewTask {
            kind: "plugin-limit".into(),
            subject: format!("plugin {plugin} reached its {} limit", limit.name()),
            priority: crate::store::Priority::Normal,
            due: None,
            assignee: None,
            dedupe_key: format!("plugin-limit:{plugin}:{}", limit.name()),
        };
        match crate::tasks::raise(&self.db, chrono::Utc::now(), task) {
            Ok((t, true)) => {
                tracing::warn!(plugin, limit = limit.name(), task = %t.id, "plugin reached a limit; task raised")
            }
            Ok((_, false)) => tracing::warn!(
                plugin,
                limit = limit.name(),
                "plugin reached a limit (task already open)"
            ),
            Err(e) => {
                tracing::error!(plugin, limit = limit.name(), error = %e, "plugin reached a limit; could not raise the task")
            }
        }
    }
}

/// Re-reads the configuration and swaps the plugin set in; on any problem
/// the old set stays. Logs the outcome and returns it in words (for the
/// control socket's `billd plugins reload`).
pub fn reload_plugins(
    source: &std::path::Path,
    registry: &PluginRegistry,
) -> Result<String, String> {
    let outcome = Config::load(source)
        .map_err(|e| format!("configuration has problems; plugins unchanged:\n{e}"))
        .and_then(|cfg| {
            crate::cli::configured_plugins(&cfg)
                .specs()
                .map_err(|e| format!("plugin configuration has problems; plugins unchanged: {e:#}"))
        })
        .and_then(|specs| {
            registry.reload(&specs).map_err(|errors| {
                let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
                format!("plugin refused; plugins unchanged:\n{}", lines.join("\n"))
            })
        });
    match outcome {
        Ok(report) => {
            tracing::info!(
                added = ?report.added,
                removed = ?report.removed,
                replaced = ?report.replaced,
                "plugins reloaded; calls in flight finish on the old versions"
            );
            Ok(format!(
                "plugins reloaded (added {:?}, removed {:?}, replaced {:?}); calls in flight finish on the old versions",
                report.added, report.removed, report.replaced
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "plugin reload refused");
            Err(e)
        }
    }
}

fn spawn_signal_watch(
    cancel: CancellationToken,
    source: std::path::PathBuf,
    plugins: Option<Arc<PluginRegistry>>,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: finishing in-flight work");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: finishing in-flight work");
                    break;
                }
                _ = hup.recv() => match &plugins {
                    Some(registry) => {
                        let (source, registry) = (source.clone(), registry.clone());
                        tracing::info!("SIGHUP: reloading plugins");
                        let _ = tokio::task::spawn_blocking(move || reload_plugins(&source, &registry)).await;
                    }
                    None => tracing::info!("SIGHUP: no plugins configured; nothing to reload"),
                },
            }
        }
        cancel.cancel();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Task;

    #[test]
    fn a_plugin_limit_raises_one_task_naming_plugin_and_limit() {
        let db = Db::in_memory();
        let events = LimitTasks { db: db.clone() };
        for _ in 0..3 {
            events.limit_reached("acme-payer", Limit::StateBytes);
        }
        events.limit_reached("acme-payer", Limit::LogPerMinute);
        let tasks: Vec<Task> = crate::tasks::all(&db).unwrap();
        let mut subjects: Vec<_> = tasks
            .iter()
            .map(|t| (t.kind.as_str(), t.subject.as_str(), t.dedupe_key.as_str()))
            .collect();
        subjects.sort();
        assert_eq!(
            subjects,
            [
                (
                    "plugin-limit",
                    "plugin acme-payer reached its log-per-minute limit",
                    "plugin-limit:acme-payer:log-per-minute"
                ),
                (
                    "plugin-limit",
                    "plugin acme-payer reached its state-bytes limit",
                    "plugin-limit:acme-payer:state-bytes"
                ),
            ]
        );
    }
}
