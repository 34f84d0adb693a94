//! The daemon's wiring, in one place: open the store, load plugins, build
//! the jobs, start the scheduler, the notification dispatcher, the signal
//! watch and the control socket, and run until SIGTERM or SIGINT.
//!
//! The CLI calls this module; this module never calls the CLI. What the
//! running parts do for a request is the app layer's business: the control
//! socket gets an [`App`] built from them.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::app::plugins::reload_from;
use crate::app::{App, DaemonParts, error_chain};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::jobs::runner::Runner;
use crate::jobset::{JobBuildError, SHUTDOWN_GRACE, scheduled_jobs, services};
use crate::notify::dispatch::Dispatcher;
use crate::notify::mail::{MailError, Mailer};
use crate::plugin::PluginRegistry;
use crate::scheduler::runtime::{Scheduler, SchedulerError};
use crate::store::{Db, StoreError};

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
    #[error(transparent)]
    Job(#[from] JobBuildError),
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
    let db = Db::open_sled(&cfg.store.path, &cfg.store.key_file, cfg.store.cache_bytes)?;
    crate::schema::prepare(&db)?;
    Ok(db)
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
    // Plugins load before jobs are built, so jobs can call connectors.
    let plugins = load_plugins(&cfg, &db)?;
    let services = services(
        &cfg,
        db.clone(),
        clock.clone(),
        mailer.clone(),
        plugins.clone(),
    );
    let jobs = scheduled_jobs(&cfg, &services)?;
    let runner = Runner::new(db.clone(), clock.clone(), SHUTDOWN_GRACE);
    let scheduler = Arc::new(Scheduler::new(
        db.clone(),
        clock.clone(),
        runner,
        jobs,
        identity(),
    ));
    let cancel = CancellationToken::new();
    spawn_signal_watch(
        cancel.clone(),
        cfg.source.clone(),
        plugins.clone(),
        db.clone(),
    )?;
    let cfg = Arc::new(cfg);
    let app = App::in_daemon(
        cfg.clone(),
        db.clone(),
        clock,
        DaemonParts {
            scheduler: scheduler.clone(),
            plugins,
        },
        cancel.clone(),
    );
    let control = tokio::spawn(crate::control::serve(app, cancel.clone()));
    // Urgent tasks go out at once through their routes; the loop finishes
    // its current pass on shutdown.
    let dispatcher = Arc::new(Dispatcher::new(
        db.clone(),
        services.clock.clone(),
        services.notify.clone(),
        cfg.billers.clone(),
        mailer,
    ));
    let dispatch = tokio::spawn(dispatcher.run(cancel.clone()));
    tracing::info!(
        jobs = cfg.jobs.len(),
        store = %cfg.store.path.display(),
        "billd started"
    );
    scheduler.run(cancel).await?;
    if let Err(e) = dispatch.await {
        tracing::warn!(error = %e, "notification dispatcher task failed");
    }
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
    crate::app::plugins::load_configured(cfg, db).map_err(|e| DaemonError::Plugins(error_chain(&e)))
}

fn spawn_signal_watch(
    cancel: CancellationToken,
    source: std::path::PathBuf,
    plugins: Option<Arc<PluginRegistry>>,
    db: Db,
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
                        let (source, registry, db) = (source.clone(), registry.clone(), db.clone());
                        tracing::info!("SIGHUP: reloading plugins");
                        // reload_from logs the outcome either way.
                        let _ = tokio::task::spawn_blocking(move || reload_from(&source, &registry, &db)).await;
                    }
                    None => tracing::info!("SIGHUP: no plugins configured; nothing to reload"),
                },
            }
        }
        cancel.cancel();
    });
    Ok(())
}
