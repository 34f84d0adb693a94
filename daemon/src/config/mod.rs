//! The one TOML file a practice writes to run billd.
//!
//! Everything the daemon needs to start — who the practice is, where the
//! encrypted store lives, how mail leaves, who receives what, which jobs run
//! when — comes from a single file, validated in full before anything starts.
//! A bad file yields a [`ConfigError`] listing every problem as
//! `FILE:LINE:COL: key: message`; unknown keys are errors, so a typo never
//! silently falls back to a default. Secrets appear only as references
//! (`env:NAME`, `file:PATH`, see [`secret`]) and are resolved at load.
//!
//! `config/billd.example.toml` documents every key.
//!
//! ```
//! use billd::config::Config;
//! use std::path::Path;
//!
//! let text = r#"
//! [practice]
//! name = "Riverside Family Medicine"
//! npi = "1234567893"
//! tax_id = "12-3456789"
//! timezone = "America/Chicago"
//!
//! [store]
//! path = "data"
//! key_file = "store.key"
//!
//! [mail]
//! from = "billd <billing@example.org>"
//! outbox_dir = "outbox"
//!
//! [[job]]
//! name = "morning-digest"
//! kind = "digest"
//! schedule = "30 7 * * 1-5"
//! "#;
//! let config = Config::from_str(text, Path::new("/etc/billd/billd.toml")).unwrap();
//! assert_eq!(config.store.path, Path::new("/etc/billd/data"));
//! assert_eq!(config.job_named("morning-digest").unwrap().timezone, chrono_tz::America::Chicago);
//! ```

mod check;
mod error;
mod raw;
pub mod secret;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::domain::practice::{Biller, Practice};
pub use crate::notify::settings::{MailConfig, MailTransport, SmtpTls};
pub use check::check_npi;
pub use error::{ConfigError, Location, Problem};
use secret::{ProcessEnv, SecretEnv};

/// Default [`JobConfig::catch_up_window`]: six hours, so a daemon restarted
/// the same morning after an overnight outage still sends the morning's
/// digest or the night's submissions once, while a run missed yesterday is
/// dropped rather than done a day late.
pub const DEFAULT_CATCH_UP_WINDOW: Duration = Duration::from_secs(6 * 3600);
/// Default [`JobConfig::concurrency`]: work items one run does at once.
pub const DEFAULT_JOB_CONCURRENCY: usize = 4;
/// Default [`StoreConfig::cache_bytes`]: 64 MiB of sled page cache.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Default SMTP pool size ([`MailTransport::Smtp`] `pool_max`).
pub const DEFAULT_SMTP_POOL_MAX: u32 = 4;
/// Default SMTP timeout for connecting and each command.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated configuration. Paths are absolute (relative ones in the file
/// are resolved against the file's directory) and secrets are resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from, as given.
    pub source: PathBuf,
    /// Who the practice is.
    pub practice: Practice,
    /// Where the encrypted record store lives.
    pub store: StoreConfig,
    /// How email leaves.
    pub mail: MailConfig,
    /// The people who receive tasks and digests, in file order.
    pub billers: Vec<Biller>,
    /// Where task notifications go and which kinds are urgent,
    /// `[notify]` (defaults when absent: no routes).
    pub notify: crate::notify::routing::NotifyConfig,
    /// The scheduled jobs, in file order; names are unique.
    pub jobs: Vec<JobConfig>,
    /// The connector plugins, `[[plugin]]` in file order (secrets still as
    /// references; they resolved when the file was checked).
    pub plugins: Vec<crate::plugin::PluginEntry>,
    /// Who may sign plugins, `[plugin_trust]`.
    pub plugin_trust: crate::plugin::PluginTrust,
    /// The plugin instance pool's size, `[plugin_pool]`.
    pub plugin_pool: crate::plugin::PluginPool,
}

/// `[store]`: the encrypted record store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The store's directory (absolute).
    pub path: PathBuf,
    /// The file holding the store's encryption key (absolute).
    pub key_file: PathBuf,
    /// Page cache size for the store, in bytes.
    pub cache_bytes: u64,
}

/// `[[job]]`: one scheduled job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    /// A unique name (`[A-Za-z0-9_-]+`), the key for its run history.
    pub name: String,
    /// Which job kind runs (one of [`crate::jobs::registry::KINDS`]).
    pub kind: String,
    /// A cron expression, 5 fields or 6 with seconds; it parses with
    /// [`parse_schedule`].
    pub schedule: String,
    /// The timezone the schedule is read in (default: the practice's).
    pub timezone: chrono_tz::Tz,
    /// What to do about occurrences missed while the daemon was down.
    pub misfire: Misfire,
    /// How far back a missed occurrence still counts for
    /// [`Misfire::RunOnce`] (default [`DEFAULT_CATCH_UP_WINDOW`]).
    pub catch_up_window: Duration,
    /// Whether the scheduler fires this job (default true); a disabled job
    /// can still be run by hand.
    pub enabled: bool,
    /// Work items one run does at once, at least 1 (default
    /// [`DEFAULT_JOB_CONCURRENCY`]).
    pub concurrency: usize,
    /// Kind-specific parameters from `[job.params]` (empty when absent).
    pub params: toml::Table,
    /// Where the job's `[[job]]` header is, for run-time errors.
    pub location: Location,
}

/// What the scheduler does about occurrences missed while it was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfire {
    /// Run once (however many were missed) if the latest missed occurrence
    /// is within the catch-up window. `misfire = "run-once"`, the default.
    RunOnce,
    /// Skip missed occurrences; wait for the next one. `misfire = "skip"`.
    Skip,
}

/// Parses a job schedule the way billd does everywhere: croner, 5 fields
/// (minute precision) or 6 with a leading seconds field; a year field is
/// refused.
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    use croner::parser::{CronParser, Seconds, Year};
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
}

impl Config {
    /// Reads and validates the configuration at `path`, resolving `env:`
    /// secrets from this process's environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &ProcessEnv)
    }

    /// Like [`Config::load`], looking `env:` secrets up in `env`.
    pub fn load_with_env(path: &Path, env: &dyn SecretEnv) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_str_with_env(&text, path, env)
    }

    /// Validates configuration `text` as if read from `source` (used in
    /// messages and to resolve relative paths), resolving `env:` secrets
    /// from this process's environment.
    pub fn from_str(text: &str, source: &Path) -> Result<Config, ConfigError> {
        Config::from_str_with_env(text, source, &ProcessEnv)
    }

    /// Like [`Config::from_str`], looking `env:` secrets up in `env`.
    pub fn from_str_with_env(
        text: &str,
        source: &Path,
        env: &dyn SecretEnv,
    ) -> Result<Config, ConfigError> {
        check::check(text, source, env)
    }

    /// The job called `name`, if any.
    pub fn job_named(&self, name: &str) -> Option<&JobConfig> {
        self.jobs.iter().find(|job| job.name == name)
    }

    /// The billers whose `receives` lists `what` (a task kind or `"digest"`).
    pub fn billers_receiving<'a>(&'a self, what: &'a str) -> impl Iterator<Item = &'a Biller> {
        self.billers
            .iter()
            .filter(move |biller| biller.receives.iter().any(|r| r == what))
    }
}

#[cfg(test)]
mod tests;
