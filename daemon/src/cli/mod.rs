//! The `billd` command line: one module per verb group, one enum of verbs.
//!
//! Exit codes: 0 success, 1 failure at run time, 2 usage or configuration
//! error. Every verb takes `--config`, defaulting to `$BILLD_CONFIG`, then
//! `./billd.toml`.

/// Writes a line of a verb's output to `out`, failing the verb if it cannot.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(|e| $crate::cli::Failure::Runtime(e.into()))?
    };
}

/// Sends a request through a [`Backend`] and takes the reply variant the
/// request answers with, failing the verb on any other.
macro_rules! call {
    ($backend:expr, $req:expr, $variant:path) => {
        match $backend.call($req)? {
            $variant(v) => v,
            other => return Err($crate::cli::unexpected(&other)),
        }
    };
}

pub mod accounts;
pub mod claims;
pub mod dunning;
pub mod import;
pub mod jobs;
pub mod plugin_session;
pub mod plugins;
pub mod remits;
pub mod tasks;
pub mod x12;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::plugins::ConfiguredPlugins;
use crate::app::{App, AppError, Reply, Request};
use crate::config::{Config, ConfigError};
use crate::control::Client;
use crate::store::{Db, StoreError, StoreKey};

/// billd: medical-billing automation daemon.
#[derive(Debug, Parser)]
#[command(name = "billd", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: $BILLD_CONFIG, then ./billd.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a fresh store key (mode 0600; never overwrites) and create the store.
    Init,
    /// Run the daemon in the foreground until SIGTERM or SIGINT.
    Run {
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Check a configuration file and report every problem with its line.
    CheckConfig {
        /// The file to check [default: the --config file].
        file: Option<PathBuf>,
    },
    /// Inspect and run jobs.
    Jobs {
        /// Job verb.
        #[command(subcommand)]
        cmd: jobs::JobsCommand,
    },
    /// Work with biller tasks.
    Tasks {
        /// Task verb.
        #[command(subcommand)]
        cmd: tasks::TasksCommand,
    },
    /// Import patients, coverages, appointments (CSV) or claims (837P).
    Import {
        /// What to import.
        #[command(subcommand)]
        cmd: import::ImportCommand,
    },
    /// Claims: list, show, hold, release.
    Claims {
        /// Claim verb.
        #[command(subcommand)]
        cmd: claims::ClaimsCommand,
    },
    /// Remittances (835): post a file, review postings.
    Remits {
        /// Remittance verb.
        #[command(subcommand)]
        cmd: remits::RemitsCommand,
    },
    /// Patient accounts: show one, aging.
    Accounts {
        /// Account verb.
        #[command(subcommand)]
        cmd: accounts::AccountsCommand,
    },
    /// Holds on accounts (dispute, bankruptcy, ...): add, remove, list.
    Holds {
        /// Hold verb.
        #[command(subcommand)]
        cmd: dunning::HoldsCommand,
    },
    /// Payment plans: create, list, cancel.
    Plans {
        /// Plan verb.
        #[command(subcommand)]
        cmd: dunning::PlansCommand,
    },
    /// Patients: opt out of dunning email.
    Patients {
        /// Patient verb.
        #[command(subcommand)]
        cmd: dunning::PatientsCommand,
    },
    /// The mail outbox: list stored messages.
    Outbox {
        /// Outbox verb.
        #[command(subcommand)]
        cmd: dunning::OutboxCommand,
    },
    /// Connector plugins: list, inspect, verify, call, sign, reload.
    Plugins {
        /// Plugin verb.
        #[command(subcommand)]
        cmd: plugins::PluginsCommand,
    },
    /// Read, validate and write X12 5010 files (no configuration needed).
    X12 {
        /// X12 verb.
        #[command(subcommand)]
        cmd: x12::X12Command,
    },
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How a verb failed, which decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Usage or configuration error (exit 2).
    Config(String),
    /// Failure at run time (exit 1).
    Runtime(anyhow::Error),
}

impl Failure {
    /// The process exit code: 2 for configuration, 1 at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }

    /// What to print on stderr (no trailing newline); the same whether the
    /// verb ran here or in the daemon behind the control socket.
    pub fn message(&self) -> String {
        match self {
            Failure::Config(msg) => format!("billd: configuration error:\n{msg}"),
            Failure::Runtime(e) => format!("billd: error: {e:#}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Runtime(e.into())
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        if e.kind().is_usage() {
            Failure::Config(e.message())
        } else {
            Failure::Runtime(anyhow::anyhow!(e.message()))
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Config(e.to_string())
    }
}

/// The result of a verb.
pub type VerbResult = Result<ExitCode, Failure>;

/// The configuration file to use: `--config`, `$BILLD_CONFIG`, `./billd.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("BILLD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("billd.toml"))
}

/// Loads the configuration; errors are configuration errors (exit 2).
pub fn load_config(flag: Option<&Path>) -> Result<Config, Failure> {
    Ok(Config::load(&config_path(flag))?)
}

/// Opens the configured store.
pub fn open_store(cfg: &Config) -> Result<Db, Failure> {
    crate::daemon::open_store(cfg).map_err(|e| Failure::Runtime(e.into()))
}

/// Where a verb's operations run: in this process on the store, or in the
/// running daemon that holds it, through its control socket.
#[derive(Debug)]
pub enum Backend {
    /// The store was free: operations run here.
    Local(App),
    /// The daemon holds the store.
    Daemon(Client),
}

impl Backend {
    /// Opens the store, or finds it locked by the daemon and talks to that.
    pub fn open(cfg: &Arc<Config>) -> Result<Backend, StoreError> {
        match crate::daemon::open_store(cfg) {
            Ok(db) => Ok(Backend::Local(App::local(cfg.clone(), db))),
            Err(StoreError::Locked { .. }) => Ok(Backend::Daemon(Client::for_config(cfg))),
            Err(e) => Err(e),
        }
    }

    /// Runs one operation where the store is. A local `jobs run` stops at
    /// a checkpoint on Ctrl-C.
    pub fn call(&mut self, req: Request) -> Result<Reply, Failure> {
        match self {
            Backend::Daemon(client) => Ok(client.call(req)?),
            Backend::Local(app) => {
                let watch_ctrl_c = matches!(req, Request::JobsRun { .. });
                let cancel = app.cancel_token().clone();
                Ok(runtime()?.block_on(async {
                    if watch_ctrl_c {
                        tokio::spawn(async move {
                            if tokio::signal::ctrl_c().await.is_ok() {
                                cancel.cancel();
                            }
                        });
                    }
                    app.execute(req).await
                })?)
            }
        }
    }
}

/// The failure for a reply that does not answer the request sent.
pub fn unexpected(reply: &Reply) -> Failure {
    Failure::Runtime(anyhow::anyhow!(
        "the answer does not fit the request (a {} reply)",
        reply.name()
    ))
}

/// Parses the command line, runs the verb, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{}", failure.message());
            ExitCode::from(failure.exit_code())
        }
    }
}

fn dispatch(cli: Cli) -> VerbResult {
    let cfg_flag = cli.config.as_deref();
    match cli.command {
        Command::Init => init(cfg_flag),
        Command::Run { log_format } => run(cfg_flag, log_format),
        Command::CheckConfig { file } => check_config(file.as_deref().or(cfg_flag)),
        Command::Jobs { cmd } => jobs::run(cfg_flag, cmd),
        Command::Tasks { cmd } => tasks::run(cfg_flag, cmd),
        Command::Import { cmd } => import::run(cfg_flag, cmd),
        Command::Claims { cmd } => claims::run(cfg_flag, cmd),
        Command::Remits { cmd } => remits::run(cfg_flag, cmd),
        Command::Accounts { cmd } => accounts::run(cfg_flag, cmd),
        Command::Holds { cmd } => dunning::holds(cfg_flag, cmd),
        Command::Plans { cmd } => dunning::plans(cfg_flag, cmd),
        Command::Patients { cmd } => dunning::patients(cfg_flag, cmd),
        Command::Outbox { cmd } => dunning::outbox(cfg_flag, cmd),
        Command::X12 { cmd } => Ok(x12::run(&cmd)?),
        Command::Plugins {
            cmd: plugins::PluginsCommand::Reload { pid: None },
        } => {
            // Verify here first, then ask the running daemon over its
            // control socket to re-read the configuration and swap.
            let cfg = load_config(cfg_flag)?;
            if !plugins::verify(&ConfiguredPlugins::from_config(&cfg))? {
                eprintln!("billd: not reloading: fix the problems above first");
                return Ok(ExitCode::from(1));
            }
            let mut daemon = Backend::Daemon(Client::for_config(&cfg));
            let r = call!(daemon, Request::PluginsReload, Reply::Reloaded);
            println!(
                "plugins reloaded (added {:?}, removed {:?}, replaced {:?}); calls in flight finish on the old versions",
                r.added, r.removed, r.replaced
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins { cmd } => {
            // `call`, `inspect` and `sign` need no configuration file; the
            // others report a bad one as a configuration error.
            let configured = match load_config(cfg_flag) {
                Ok(cfg) => Some(ConfiguredPlugins::from_config(&cfg)),
                Err(e) if cmd.needs_config() => return Err(e),
                Err(_) => None,
            };
            Ok(plugins::run(&cmd, configured.as_ref())?)
        }
    }
}

/// The tokio runtime for verbs that do I/O (two workers: this is a 2-core class of machine).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("starting the async runtime: {e}")))
}

fn init(cfg_flag: Option<&Path>) -> VerbResult {
    let cfg = load_config(cfg_flag)?;
    if let Some(dir) = cfg.store.key_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    StoreKey::generate_to(&cfg.store.key_file).map_err(|e| anyhow::anyhow!(e))?;
    let db = open_store(&cfg)?;
    db.flush()?;
    println!(
        "wrote a new store key to {} (mode 0600)",
        cfg.store.key_file.display()
    );
    println!("store ready at {}", cfg.store.path.display());
    println!("keep a copy of the key file somewhere safe: without it the store cannot be read");
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BILLD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn run(cfg_flag: Option<&Path>, log_format: LogFormat) -> VerbResult {
    let cfg = load_config(cfg_flag)?;
    init_tracing(log_format);
    // Build every job before touching the store, so a bad job stops start-up
    // as a configuration error.
    validate_jobs(&cfg)?;
    let db = open_store(&cfg)?;
    runtime()?
        .block_on(crate::daemon::run(cfg, db))
        .map_err(|e| match e {
            // A plugin refused at load (pin, signature, settings) is fixed in
            // the configuration: exit 2, so systemd does not restart-loop.
            crate::daemon::DaemonError::Plugins(msg) => Failure::Config(msg),
            other => Failure::Runtime(other.into()),
        })?;
    Ok(ExitCode::SUCCESS)
}

/// Builds every job kind from its params; problems are configuration errors.
pub fn validate_jobs(cfg: &Config) -> Result<(), Failure> {
    crate::jobset::validate_jobs(cfg).map_err(Failure::Config)
}

fn check_config(file: Option<&Path>) -> VerbResult {
    let cfg = load_config(file)?;
    validate_jobs(&cfg)?;
    println!(
        "{}: ok ({} jobs, {} billers)",
        cfg.source.display(),
        cfg.jobs.len(),
        cfg.billers.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ErrorKind;
    use crate::domain::TaskError;

    #[test]
    fn app_errors_keep_their_exit_codes_and_messages() {
        let config: Failure = AppError::NoSuchBiller("nobody".into()).into();
        assert_eq!(config.exit_code(), 2);
        assert_eq!(
            config.message(),
            "billd: configuration error:\nno biller named `nobody`"
        );
        let missing: Failure = AppError::Task(TaskError::NotFound("T9".into())).into();
        assert_eq!(missing.exit_code(), 1);
        assert_eq!(missing.message(), "billd: error: no task with id T9");
        // A failure the daemon reported keeps its kind across the socket.
        let remote: Failure = AppError::Remote {
            kind: ErrorKind::Config,
            message: "no job named `x` (configured: a)".into(),
        }
        .into();
        assert_eq!(remote.exit_code(), 2);
        let protocol: Failure = AppError::Protocol("version 2 is not supported".into()).into();
        assert_eq!(protocol.exit_code(), 1);
    }
}
