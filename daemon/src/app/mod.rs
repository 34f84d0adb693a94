//! The app layer: billd's operations as typed functions that return data and
//! typed errors.
//!
//! The command line, the control socket and the HTTP API are adapters over
//! this layer: they parse, call an operation, and render what it returns.
//! Nothing here prints, knows a terminal, or imports an adapter. One file
//! per area of work:
//!
//! - [`jobs`]: list (next fire times, last outcome), next, run, history.
//! - [`tasks`]: list with filters, show, add, assign, close.
//! - [`plugins`]: the configured plugin set (check, reload) and its start-up.
//! - [`import`]: CSV and 837P files into the store, all or nothing.
//! - [`claims`]: list, show, hold and release claims.
//! - [`accounts`]: one account's ledger and balances, and aging.
//! - [`dunning`]: holds, payment plans, opt-out, the outbox.
//! - [`remits`]: 835 posting to the ledger and the review queue.
//! - [`request`]: every operation as one serde request and its typed reply,
//!   which the control socket (and the HTTP API) carry.
//!
//! Claims, accounts and the rest become new files here, each adding its
//! request variants.
//!
//! An [`App`] holds what the operations use, as values: the configuration,
//! the store, a clock, and inside the daemon its live parts (the scheduler
//! with its per-job locks, the plugin registry). The CLI builds one locally
//! when the store is free; the daemon builds one from its running parts.

pub mod accounts;
pub mod author;
pub mod claims;
pub mod dunning;
pub mod import;
pub mod jobs;
pub mod plugins;
pub mod remits;
pub mod request;
pub mod tasks;
#[cfg(test)]
pub(crate) mod testing;

pub use request::{Reply, Request};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::domain::TaskError;
use crate::jobs::JobError;
use crate::jobset::JobBuildError;
use crate::notify::mail::MailError;
use crate::plugin::PluginRegistry;
use crate::scheduler::runtime::Scheduler;
use crate::store::{Db, StoreError};

/// What the operations work on.
#[derive(Clone)]
pub struct App {
    cfg: Arc<Config>,
    db: Db,
    clock: SharedClock,
    daemon: Option<DaemonParts>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.cfg.source)
            .field("in_daemon", &self.daemon.is_some())
            .finish_non_exhaustive()
    }
}

/// The running daemon's parts that in-daemon operations go through.
#[derive(Clone)]
pub struct DaemonParts {
    /// The scheduler: `jobs run` runs under its per-job lock.
    pub scheduler: Arc<Scheduler>,
    /// The loaded plugins, if any are configured (`plugins reload`).
    pub plugins: Option<Arc<PluginRegistry>>,
}

impl App {
    /// An app over a store this process opened: `jobs run` runs here, in
    /// this process, on the system clock.
    pub fn local(cfg: Arc<Config>, db: Db) -> App {
        App {
            cfg,
            db,
            clock: Arc::new(SystemClock),
            daemon: None,
            cancel: CancellationToken::new(),
        }
    }

    /// The daemon's app: runs go through its scheduler, reloads through its
    /// plugin registry, and `cancel` is the daemon's shutdown.
    pub fn in_daemon(
        cfg: Arc<Config>,
        db: Db,
        clock: SharedClock,
        parts: DaemonParts,
        cancel: CancellationToken,
    ) -> App {
        App {
            cfg,
            db,
            clock,
            daemon: Some(parts),
            cancel,
        }
    }

    /// The same app reading time from `clock` (tests use a manual one).
    pub fn with_clock(mut self, clock: SharedClock) -> App {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Cancelling this stops an in-process run (it checkpoints and ends
    /// `interrupted`); in the daemon it is the daemon's shutdown.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Now, by the app's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today in the practice's timezone, by the app's clock.
    pub fn today(&self) -> chrono::NaiveDate {
        self.now()
            .with_timezone(&self.cfg.practice.timezone)
            .date_naive()
    }

    /// The daemon's parts, when this app runs inside the daemon.
    pub fn daemon(&self) -> Option<&DaemonParts> {
        self.daemon.as_ref()
    }
}

/// What sort of failure an [`AppError`] is, which decides how an adapter
/// reports it (the CLI's exit code, the API's status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request or the configuration is wrong (an unknown job or biller,
    /// an unusable job definition): fix the input, retrying will not help.
    Config,
    /// The record asked for does not exist.
    NotFound,
    /// The request conflicts with the current state (a closed task, a run
    /// going or unfinished).
    Conflict,
    /// Something failed while doing the work (store, mail, a job, plugins).
    Runtime,
    /// The two ends of the control socket do not understand each other (a
    /// protocol version, a malformed message).
    Protocol,
}

impl ErrorKind {
    /// Whether the caller asked wrongly (usage, configuration) as opposed
    /// to the work failing. A protocol mismatch is not the caller's doing
    /// (a CLI and a daemon of different builds), so it is not usage.
    pub fn is_usage(self) -> bool {
        matches!(self, ErrorKind::Config)
    }
}

/// Why an operation failed. Messages carry ids, names and codes, never
/// patient data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// No configured job has that name.
    #[error("no job named `{name}` (configured: {configured})")]
    NoSuchJob {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        configured: String,
    },
    /// No configured biller has that name.
    #[error("no biller named `{0}`")]
    NoSuchBiller(String),
    /// A configured job cannot be scheduled or built; one line per problem.
    #[error("{0}")]
    BadJobs(String),
    /// A job cannot run now: it has an unfinished run to resume first.
    #[error(
        "job {job} has an unfinished run {run} ({outcome}); start the daemon to resume it first"
    )]
    UnfinishedRun {
        /// The job.
        job: String,
        /// The unfinished run's id.
        run: String,
        /// Its recorded outcome.
        outcome: String,
    },
    /// The scheduler refused or failed a manual run.
    #[error("{0}")]
    RunRefused(String),
    /// A task operation failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// An input file was refused whole; nothing of it was kept.
    #[error(transparent)]
    Refused(#[from] crate::intake::Refused),
    /// No claim has that id.
    #[error("no claim with id {0}")]
    NoSuchClaim(String),
    /// No account has that id.
    #[error("no account with id {0}")]
    NoSuchAccount(String),
    /// No record has that id (the message names which).
    #[error("{0}")]
    NoSuchRecord(String),
    /// An argument is unusable (the message names it).
    #[error("{0}")]
    Invalid(String),
    /// Remittance posting failed or was refused.
    #[error(transparent)]
    Posting(#[from] crate::posting::PostError),
    /// The claim cannot do that in its state.
    #[error("{0}")]
    ClaimConflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mail transport is unusable.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// A job kind could not be built for a run.
    #[error(transparent)]
    JobBuild(#[from] JobBuildError),
    /// A run failed as a whole.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The plugin configuration or a plugin is unusable.
    #[error(transparent)]
    Plugins(#[from] plugins::PluginSetupError),
    /// A reload was refused; the old plugin set stays.
    #[error("{0}")]
    ReloadRefused(String),
    /// The operation needs a part this app does not have (for example a
    /// reload outside the daemon, or a daemon with no plugins).
    #[error("{0}")]
    Unavailable(String),
    /// The two ends of a connection (the control socket) do not understand
    /// each other.
    #[error("{0}")]
    Protocol(String),
    /// A failure reported by the other end of the control socket.
    #[error("{message}")]
    Remote {
        /// Its kind, as the other end classified it.
        kind: ErrorKind,
        /// Its message, with its causes.
        message: String,
    },
}

impl AppError {
    /// The kind of failure, for adapters to map (exit codes, statuses).
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::NoSuchJob { .. }
            | AppError::NoSuchBiller(_)
            | AppError::BadJobs(_)
            | AppError::Invalid(_) => ErrorKind::Config,
            AppError::UnfinishedRun { .. }
            | AppError::ClaimConflict(_)
            | AppError::Posting(crate::posting::PostError::Conflict(_)) => ErrorKind::Conflict,
            AppError::Refused(_) => ErrorKind::Config,
            AppError::NoSuchClaim(_)
            | AppError::NoSuchAccount(_)
            | AppError::NoSuchRecord(_)
            | AppError::Posting(crate::posting::PostError::NoSuchPosting(_)) => ErrorKind::NotFound,
            AppError::Task(TaskError::NotFound(_)) => ErrorKind::NotFound,
            AppError::Task(TaskError::AlreadyClosed(_)) => ErrorKind::Conflict,
            AppError::Protocol(_) => ErrorKind::Protocol,
            AppError::Remote { kind, .. } => *kind,
            _ => ErrorKind::Runtime,
        }
    }

    /// The message with every cause after it (`outer: inner: innermost`).
    pub fn message(&self) -> String {
        match self {
            AppError::Remote { message, .. } => message.clone(),
            other => error_chain(other),
        }
    }
}

/// An error and its causes, joined by `: `.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The configured job named `name`.
pub fn job_named<'a>(
    cfg: &'a Config,
    name: &str,
) -> Result<&'a crate::config::JobConfig, AppError> {
    cfg.job_named(name).ok_or_else(|| AppError::NoSuchJob {
        name: name.to_string(),
        configured: cfg
            .jobs
            .iter()
            .map(|j| j.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}
