//! Plugin operations on the practice's configured plugin set: check every
//! package as the daemon would load it (what `list` and `verify` show), the
//! daemon's start-up load, and a reload into the running registry.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{App, AppError};
use crate::config::Config;
use crate::config::secret::SecretRef;
use crate::plugin::{
    AuditSink, EngineSettings, HostOptions, Limit, LoadError, PluginEntry, PluginEvents,
    PluginHost, PluginInfo, PluginRegistry, PluginSpec, PluginTrust, config, manifest,
};
use crate::store::{RawStore, StoreKey};

/// Why the configured plugin set could not be resolved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginSetupError {
    /// The `[[plugin]]` entries or `[plugin_trust]` have problems, each
    /// naming its field.
    #[error("plugin configuration:\n{}", indented(.0))]
    Invalid(Vec<String>),
    /// One entry could not be resolved (a secret it references, a path).
    #[error("{0}")]
    Entry(String),
    /// Plugins refused at load (pin, signature, settings, world).
    #[error("plugins did not load:\n{}", indented(.0))]
    NotLoaded(Vec<String>),
    /// The plugin host could not start.
    #[error(transparent)]
    Host(#[from] LoadError),
}

fn indented(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The practice's plugin configuration, as the loaded config holds it.
#[derive(Debug, Clone, Default)]
pub struct ConfiguredPlugins {
    /// The `[[plugin]]` entries.
    pub entries: Vec<PluginEntry>,
    /// The `[plugin_trust]` section.
    pub trust: PluginTrust,
    /// The configuration file's directory (relative paths start here).
    pub base_dir: PathBuf,
    /// Where compiled plugin code is cached, if anywhere.
    pub cache_dir: Option<PathBuf>,
    /// The practice's store, which `plugins call` uses for plugin state
    /// when the daemon is not holding it.
    pub store: Option<crate::config::StoreConfig>,
    /// The engine every host of this configuration runs (from
    /// `[plugin_pool]`): the daemon's and `plugins call`'s are the same.
    pub engine: EngineSettings,
}

impl ConfiguredPlugins {
    /// The plugin part of `cfg`; compiled code is cached in the store
    /// directory.
    pub fn from_config(cfg: &Config) -> ConfiguredPlugins {
        ConfiguredPlugins {
            entries: cfg.plugins.clone(),
            trust: cfg.plugin_trust.clone(),
            base_dir: cfg
                .source
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            cache_dir: Some(cfg.store.path.join("plugin-cache")),
            store: Some(cfg.store.clone()),
            engine: cfg.plugin_pool.engine_settings(),
        }
    }

    /// Resolves every entry into a host spec, reading secrets from the
    /// environment or files now. Errors name the field.
    pub fn specs(&self) -> Result<Vec<PluginSpec>, PluginSetupError> {
        let problems = config::validate(&self.entries, &self.trust);
        if !problems.is_empty() {
            return Err(PluginSetupError::Invalid(
                problems.iter().map(ToString::to_string).collect(),
            ));
        }
        let base = self.base_dir.clone();
        let resolve = move |r: &str| -> Result<SecretString, String> {
            SecretRef::parse(r)
                .and_then(|s| s.resolve(&base))
                .map_err(|e| e.to_string())
        };
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.to_spec(i, &self.base_dir, &resolve)
                    .map_err(|p| PluginSetupError::Entry(p.to_string()))
            })
            .collect()
    }

    /// What the daemon does at start-up: a host with the default engine
    /// (this configuration's cache directory and trust), its state in `kv`
    /// (sealed with `kv_key`), HTTP audited into `audit`, limit breaches
    /// reported to `events`, and every plugin loaded. Reload later with
    /// `registry.reload(&self.specs()?)`.
    pub fn load_registry(
        &self,
        kv: Arc<dyn RawStore>,
        kv_key: Option<Arc<StoreKey>>,
        audit: Arc<dyn AuditSink>,
        events: Arc<dyn PluginEvents>,
    ) -> Result<PluginRegistry, PluginSetupError> {
        let specs = self.specs()?;
        let mut opts = HostOptions::new(kv)?;
        opts.engine = self.engine.clone();
        opts.kv_key = kv_key;
        opts.audit = audit;
        opts.events = events;
        opts.cache_dir = self.cache_dir.clone();
        opts.trust = self.trust.clone();
        let host = Arc::new(PluginHost::new(opts)?);
        PluginRegistry::load(host, &specs).map_err(|errors| {
            PluginSetupError::NotLoaded(errors.iter().map(ToString::to_string).collect())
        })
    }

    /// A host as the daemon builds it (same engine settings, trust) with
    /// its state in memory, for checking packages.
    fn check_host(&self) -> Result<PluginHost, PluginSetupError> {
        let mut opts = HostOptions::new(Arc::new(crate::store::MemStore::new()))?;
        opts.engine = self.engine.clone();
        opts.cache_dir = self.cache_dir.clone();
        opts.trust = self.trust.clone();
        // The daemon authenticates its code cache with the store key: with
        // the same key, a check compiles into the cache the daemon's next
        // start reads. Before `billd init` there is no key: nothing cached.
        opts.cache_key = self.store.as_ref().and_then(|s| {
            crate::store::StoreKey::load(&s.key_file)
                .map_err(
                    |e| tracing::debug!(error = %e, "no store key: checked plugins are not cached"),
                )
                .ok()
                .map(Arc::new)
        });
        Ok(PluginHost::new(opts)?)
    }
}

impl ConfiguredPlugins {
    /// The configured entry (and its index) for the package at `path`, by
    /// the name in its manifest.
    pub fn entry_for(&self, path: &Path) -> Result<Option<(usize, &PluginEntry)>, LoadError> {
        let paths = manifest::PackagePaths::locate(path);
        if !paths.manifest.is_file() {
            return Ok(None);
        }
        let m =
            manifest::Manifest::load(&paths.manifest).map_err(|problem| LoadError::Manifest {
                plugin: path.display().to_string(),
                problem,
            })?;
        Ok(self
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.name == m.name))
    }
}

/// Turns a plugin's first breach of a limit into a biller task (kind
/// `plugin-limit`), once per plugin and limit however often it recurs. The
/// task names the plugin and the limit only, never the data.
pub struct LimitTasks {
    /// Where tasks are raised.
    pub db: crate::store::Db,
}

impl PluginEvents for LimitTasks {
    fn limit_reached(&self, plugin: &str, limit: Limit) {
        let task = crate::domain::NewTask {
            kind: "plugin-limit".into(),
            subject: format!("plugin {plugin} reached its {} limit", limit.name()),
            priority: crate::domain::Priority::Normal,
            due: None,
            assignee: None,
            payer: None,
            dedupe_key: format!("plugin-limit:{plugin}:{}", limit.name()),
        };
        match crate::domain::task::raise(&self.db, chrono::Utc::now(), task) {
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

/// One configured plugin as a check found it.
#[derive(Debug, Clone)]
pub struct PluginCheck {
    /// The configured name.
    pub name: String,
    /// What loading it found: its description, or why it was refused.
    pub outcome: Result<PluginInfo, String>,
}

/// Loads every configured plugin as the daemon would (pins, signatures,
/// settings, secrets, world) in a throwaway host, and reports each: what
/// `plugins list` and `plugins verify` show. Works on the packages on disk,
/// so it needs no store and no daemon.
pub fn check(configured: &ConfiguredPlugins) -> Result<Vec<PluginCheck>, AppError> {
    let specs = configured.specs()?;
    let host = configured.check_host()?;
    Ok(specs
        .iter()
        .map(|s| PluginCheck {
            name: s.name.clone(),
            outcome: host
                .load(s)
                .map(|p| p.info().clone())
                .map_err(|e| e.to_string()),
        })
        .collect())
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// Plugins that were not loaded before.
    pub added: Vec<String>,
    /// Plugins no longer configured.
    pub removed: Vec<String>,
    /// Plugins present before and after (each is replaced).
    pub replaced: Vec<String>,
}

/// Re-reads the configuration at `source` and swaps its plugin set into
/// `registry`; on any problem the old set stays. Logs the outcome (SIGHUP
/// and the reload operation both come here). Blocks while plugins compile.
pub fn reload_from(
    source: &Path,
    registry: &PluginRegistry,
    db: &crate::store::Db,
) -> Result<Reloaded, AppError> {
    let outcome = Config::load(source)
        .map_err(|e| format!("configuration has problems; plugins unchanged:\n{e}"))
        .and_then(|cfg| {
            ConfiguredPlugins::from_config(&cfg)
                .specs()
                .map_err(|e| format!("plugin configuration has problems; plugins unchanged: {e}"))
        })
        .and_then(|specs| {
            registry.reload(&specs).map_err(|errors| {
                format!(
                    "plugin refused; plugins unchanged:\n{}",
                    indented(&errors.iter().map(ToString::to_string).collect::<Vec<_>>())
                )
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
            Ok(Reloaded {
                added: report.added,
                removed: report.removed,
                replaced: report.replaced,
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "plugin reload refused");
            raise_refused_task(db);
            Err(AppError::ReloadRefused(e))
        }
    }
}

/// Raises the urgent `plugin-refused` task for a refused reload (one open
/// task however often it recurs). The reasons stay in the daemon log: they
/// name files and settings, which a task subject does not carry.
fn raise_refused_task(db: &crate::store::Db) {
    let task = crate::domain::NewTask {
        kind: "plugin-refused".into(),
        subject: "plugin reload refused; the plugins loaded before keep running (reasons in the daemon log)".into(),
        priority: crate::domain::Priority::Urgent,
        due: None,
        assignee: None,
        payer: None,
        dedupe_key: "plugin-refused/reload".into(),
    };
    match crate::domain::task::raise(db, chrono::Utc::now(), task) {
        Ok((t, fresh)) => tracing::warn!(task = %t.id, fresh, "plugin-refused task raised"),
        Err(e) => tracing::error!(error = %e, "could not raise the plugin-refused task"),
    }
}

/// Reloads the daemon's plugins from its configuration file. Only inside
/// the daemon, and only when it started with plugins.
pub async fn reload(app: &App) -> Result<Reloaded, AppError> {
    let registry = match app.daemon() {
        None => {
            return Err(AppError::Unavailable(
                "plugins reload needs the running daemon".into(),
            ));
        }
        Some(parts) => parts.plugins.clone().ok_or_else(|| {
            AppError::Unavailable(
                "the daemon started with no plugins configured; restart it to add some".into(),
            )
        })?,
    };
    let source = app.config().source.clone();
    let db = app.db().clone();
    tokio::task::spawn_blocking(move || reload_from(&source, &registry, &db))
        .await
        .map_err(|e| AppError::Unavailable(format!("reload task failed: {e}")))?
}

/// Loads the configured plugins (verifying pins and signatures) into the
/// registry jobs call through, their state in `db`; `None` when none are
/// configured. What the daemon does at start-up and an in-process
/// `jobs run` does before building its job.
pub fn load_configured(
    cfg: &Config,
    db: &crate::store::Db,
) -> Result<Option<Arc<PluginRegistry>>, PluginSetupError> {
    if cfg.plugins.is_empty() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let registry = ConfiguredPlugins::from_config(cfg).load_registry(
        db.raw().clone(),
        Some(db.sealing_key()),
        Arc::new(crate::plugin::TracingAudit),
        Arc::new(LimitTasks { db: db.clone() }),
    )?;
    tracing::info!(
        plugins = cfg.plugins.len(),
        ms = started.elapsed().as_millis() as u64,
        "plugins loaded"
    );
    Ok(Some(Arc::new(registry)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::package_hashes;
    use crate::plugin::tests::dist;

    #[test]
    fn secrets_are_resolved_by_reference_and_errors_name_the_field() {
        let cfg = ConfiguredPlugins {
            entries: vec![PluginEntry {
                secrets: [(
                    "api-key".to_string(),
                    "env:BILLD_TEST_SURELY_UNSET_VAR".to_string(),
                )]
                .into(),
                ..PluginEntry::for_tests("echo-payer", Path::new("p"))
            }],
            ..Default::default()
        };
        let err = cfg.specs().unwrap_err().to_string();
        assert!(err.contains("plugin[0].secrets.api-key"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_daemon_registry_loads_from_configuration_and_reloads() {
        let (_, _, sha, _) = package_hashes(&dist("echo-payer")).unwrap();
        let entry = |generation: i64| PluginEntry {
            sha256: Some(sha.clone()),
            unpinned: false,
            settings: [("generation".to_string(), toml::Value::Integer(generation))].into(),
            ..PluginEntry::for_tests("echo-payer", Path::new("echo-payer"))
        };
        let cache = tempfile::tempdir().unwrap();
        let mut cfg = ConfiguredPlugins {
            entries: vec![entry(1)],
            trust: PluginTrust::default(),
            base_dir: dist("echo-payer").parent().unwrap().to_path_buf(),
            cache_dir: Some(cache.path().to_path_buf()),
            store: None,
            engine: EngineSettings::small(),
        };
        let audit = Arc::new(crate::plugin::MemoryAudit::new());
        let registry = cfg
            .load_registry(
                Arc::new(crate::store::MemStore::new()),
                Some(Arc::new(crate::store::StoreKey::random())),
                audit,
                Arc::new(crate::plugin::TracingEvents),
            )
            .unwrap();
        let inq = crate::plugin::tests::inquiry("W1");
        let p = registry.get("echo-payer").unwrap();
        let e = p.check_eligibility("k", &inq).await.unwrap().unwrap();
        assert_eq!(e.plan_name.as_deref(), Some("generation 1"));
        // State goes through the sealed store.
        let r = p.fetch_remittances("k", None).await.unwrap().unwrap();
        assert_eq!(r.next.as_deref(), Some("-1"));

        cfg.entries = vec![entry(2)];
        registry.reload(&cfg.specs().unwrap()).unwrap();
        let e = registry
            .get("echo-payer")
            .unwrap()
            .check_eligibility("k", &inq)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.plan_name.as_deref(), Some("generation 2"));

        // A refused reload keeps the plugins and raises one urgent
        // plugin-refused task however often it recurs.
        let db = crate::store::Db::in_memory();
        let missing = cache.path().join("no-such-billd.toml");
        assert!(reload_from(&missing, &registry, &db).is_err());
        assert!(reload_from(&missing, &registry, &db).is_err());
        let open = crate::domain::task::open(&db).unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].kind, "plugin-refused");
        assert_eq!(open[0].priority, crate::domain::Priority::Urgent);
        assert!(registry.get("echo-payer").is_some());
    }

    #[test]
    fn a_check_compiles_into_the_cache_the_daemon_then_loads_from() {
        let (_, _, sha, _) = package_hashes(&dist("echo-payer")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("store.key");
        crate::store::StoreKey::generate_to(&key_file).unwrap();
        let cfg = ConfiguredPlugins {
            entries: vec![PluginEntry {
                sha256: Some(sha),
                unpinned: false,
                ..PluginEntry::for_tests("echo-payer", Path::new("echo-payer"))
            }],
            trust: PluginTrust::default(),
            base_dir: dist("echo-payer").parent().unwrap().to_path_buf(),
            cache_dir: Some(dir.path().join("plugin-cache")),
            store: Some(crate::config::StoreConfig {
                path: dir.path().join("store"),
                key_file: key_file.clone(),
                cache_bytes: 1 << 20,
            }),
            engine: EngineSettings::small(),
        };
        let checked = check(&cfg).unwrap();
        let info = checked[0].outcome.as_ref().unwrap();
        assert!(!info.from_cache, "the first check compiles");
        let key = Arc::new(crate::store::StoreKey::load(&key_file).unwrap());
        let registry = cfg
            .load_registry(
                Arc::new(crate::store::MemStore::new()),
                Some(key),
                Arc::new(crate::plugin::MemoryAudit::new()),
                Arc::new(crate::plugin::TracingEvents),
            )
            .unwrap();
        assert!(
            registry.get("echo-payer").unwrap().info().from_cache,
            "the daemon's load reads what the check compiled"
        );

        // Without a key file (before `billd init`) a check still works.
        std::fs::remove_file(&key_file).unwrap();
        std::fs::remove_dir_all(dir.path().join("plugin-cache")).unwrap();
        assert!(check(&cfg).unwrap()[0].outcome.is_ok());
    }

    #[test]
    fn a_plugin_limit_raises_one_task_naming_plugin_and_limit() {
        let db = crate::store::Db::in_memory();
        let events = LimitTasks { db: db.clone() };
        for _ in 0..3 {
            events.limit_reached("acme-payer", Limit::StateBytes);
        }
        events.limit_reached("acme-payer", Limit::LogPerMinute);
        let tasks = crate::domain::task::all(&db).unwrap();
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
