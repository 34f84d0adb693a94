//! The author harness: run a plugin's exports with no daemon, against
//! scripted HTTP responses (and, for plugins using contract 0.3.0's `sftp`,
//! real SFTP servers the test configures).
//!
//! The harness loads a package exactly as the daemon does (same engine
//! limits, same sandbox, same allow-list checks) but with an in-memory
//! state store, an in-memory audit log, and, when fixtures are given,
//! [`FixtureSet`] answering HTTP instead of the network. It backs
//! `billd plugins call`, and plugin authors use it from `cargo test` in a
//! host-side test crate:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use billd::plugin::harness::Harness;
//! let h = Harness::builder("target/plugins/my-payer")
//!     .fixtures_dir("tests/fixtures/http")
//!     .setting("base-url", "https://api.payer.example")
//!     .secret("api-key", "test-key")
//!     .build()?;
//! let out = h
//!     .call_json("check-eligibility", &serde_json::json!({ /* inquiry */ }))
//!     .await?;
//! assert_eq!(out["ok"]["status"], "active");
//! # Ok(()) }
//! ```

use super::config::{PluginSpec, resolve_settings};
use super::dynamic::{DynCallError, call_json};
use super::http::{
    Fixture, FixtureSet, HttpAuditRecord, HttpBackend, MemoryAudit, RecordedRequest,
};
use super::manifest::{Manifest, PackagePaths, SettingValue};
use super::sftp::{SftpAuditRecord, SftpServerRef};
use super::{EngineSettings, HostOptions, LoadError, LoadedPlugin, PluginHost};
use crate::clock::SharedClock;
use crate::store::{MemStore, RawStore};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a harness could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The package could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The fixtures could not be read (in the message, not an error
    /// source, so a printed chain says it once).
    #[error("HTTP fixtures: {0}")]
    Fixtures(super::http::FixtureError),
    /// A `--setting` is not declared or does not parse as its type.
    #[error("setting {name}: {reason}")]
    Setting {
        /// The setting.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<super::http::FixtureError> for HarnessError {
    fn from(e: super::http::FixtureError) -> Self {
        HarnessError::Fixtures(e)
    }
}

/// Builds a [`Harness`].
pub struct HarnessBuilder {
    path: PathBuf,
    fixtures_dir: Option<PathBuf>,
    fixtures: Vec<Fixture>,
    network: bool,
    settings: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
    signing_keys: Vec<(String, String, Option<String>)>,
    sftp: Vec<(String, SftpServerRef)>,
    clock: Option<SharedClock>,
    engine: EngineSettings,
    limits: super::CallLimits,
}

impl std::fmt::Debug for HarnessBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarnessBuilder")
            .field("path", &self.path)
            .field("fixtures_dir", &self.fixtures_dir)
            .finish_non_exhaustive()
    }
}

impl HarnessBuilder {
    /// Loads fixtures from every `*.json` file in `dir`.
    pub fn fixtures_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fixtures_dir = Some(dir.into());
        self
    }

    /// Adds one fixture.
    pub fn fixture(mut self, f: Fixture) -> Self {
        self.fixtures.push(f);
        self
    }

    /// Sends requests to the real network (still only to the manifest's
    /// hosts) instead of fixtures.
    pub fn network(mut self) -> Self {
        self.network = true;
        self
    }

    /// Sets a setting, parsed as the manifest's declared type.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Supplies a secret.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.push((name.into(), value.into()));
        self
    }

    /// Configures a signing key (contract 0.2.0 `signing`): a PEM private
    /// key and the `kid` for token headers, as a practice would.
    pub fn signing_key(mut self, name: &str, pem: &str, kid: Option<&str>) -> Self {
        self.signing_keys
            .push((name.into(), pem.into(), kid.map(str::to_string)));
        self
    }

    /// Configures an SFTP server the manifest declares (contract 0.3.0
    /// `sftp`), as a practice would: its `password` or `private_key` is a
    /// reference, `file:PATH` (read from the file) or `env:NAME`.
    pub fn sftp_server(mut self, name: &str, server: SftpServerRef) -> Self {
        self.sftp.push((name.into(), server));
        self
    }

    /// Fixes the clock behind the `now` import.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Changes the engine's sizing (default: the daemon's,
    /// [`EngineSettings::default`], so a harness run is what the daemon
    /// runs).
    pub fn engine(mut self, engine: EngineSettings) -> Self {
        self.engine = engine;
        self
    }

    /// Changes the call limits (deadline, caps).
    pub fn limits(mut self, limits: super::CallLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Loads the plugin.
    pub fn build(self) -> Result<Harness, HarnessError> {
        let paths = PackagePaths::locate(&self.path);
        let manifest = Manifest::load(&paths.manifest).map_err(|problem| LoadError::Manifest {
            plugin: self.path.display().to_string(),
            problem,
        })?;
        let mut all = self.fixtures.clone();
        if let Some(d) = &self.fixtures_dir {
            all.extend(super::http::load_fixture_files(d)?);
        }
        let fixtures = Arc::new(FixtureSet::new(all));
        let http = if self.network {
            HttpBackend::network().map_err(|reason| LoadError::Component {
                plugin: manifest.name.clone(),
                reason,
            })?
        } else {
            HttpBackend::Fixtures(fixtures.clone())
        };
        let mut settings = BTreeMap::new();
        for (name, text) in &self.settings {
            let spec = manifest
                .settings
                .get(name)
                .ok_or_else(|| HarnessError::Setting {
                    name: name.clone(),
                    reason: format!("plugin {:?} declares no such setting", manifest.name),
                })?;
            let v = SettingValue::parse(spec.ty, text).ok_or_else(|| HarnessError::Setting {
                name: name.clone(),
                reason: format!("{text:?} is not a {:?}", spec.ty).to_lowercase(),
            })?;
            settings.insert(
                name.clone(),
                match v {
                    SettingValue::Text(s) => toml::Value::String(s),
                    SettingValue::Integer(i) => toml::Value::Integer(i),
                    SettingValue::Boolean(b) => toml::Value::Boolean(b),
                },
            );
        }
        // Check early so the error names the setting rather than the load.
        resolve_settings(&manifest, &settings).map_err(|p| HarnessError::Setting {
            name: p.field.trim_start_matches("settings.").to_string(),
            reason: p.reason,
        })?;
        let kv = Arc::new(MemStore::new());
        let audit = Arc::new(MemoryAudit::new());
        let mut opts = HostOptions::new(kv.clone())?;
        opts.engine = self.engine;
        opts.http = http;
        opts.audit = audit.clone();
        if let Some(c) = self.clock {
            opts.clock = c;
        }
        let host = PluginHost::new(opts)?;
        let mut signing_keys = std::collections::BTreeMap::new();
        for (name, pem, kid) in &self.signing_keys {
            let key =
                super::jwt::SigningKey::from_pem(&SecretString::from(pem.clone()), kid.clone())
                    .map_err(|e| HarnessError::Setting {
                        name: format!("signing_keys.{name}"),
                        reason: e.to_string(),
                    })?;
            signing_keys.insert(name.clone(), key);
        }
        let mut sftp = std::collections::BTreeMap::new();
        for (name, server) in &self.sftp {
            let resolved =
                server
                    .resolve(&resolve_reference)
                    .map_err(|e| HarnessError::Setting {
                        name: format!("sftp.{name}.{}", e.field),
                        reason: e.reason,
                    })?;
            sftp.insert(name.clone(), resolved);
        }
        let spec = PluginSpec {
            signing_keys,
            sftp,
            settings,
            secrets: self
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
                .collect(),
            // The harness stands in for a practice that allows every host
            // the manifest asks for.
            allowed_hosts: manifest.origins(),
            limits: self.limits,
            ..PluginSpec::unpinned(&manifest.name, &self.path)
        };
        let plugin = host.load(&spec)?;
        Ok(Harness {
            _host: host,
            plugin,
            audit,
            fixtures,
            kv,
        })
    }
}

/// Resolves a credential reference for [`HarnessBuilder::sftp_server`]:
/// `file:PATH` reads the file, `env:NAME` the variable. The error never
/// holds the value.
fn resolve_reference(r: &str) -> Result<SecretString, String> {
    if let Some(path) = r.strip_prefix("file:") {
        std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|e| format!("cannot read {path}: {e}"))
    } else if let Some(name) = r.strip_prefix("env:") {
        std::env::var(name)
            .map(SecretString::from)
            .map_err(|_| format!("environment variable {name} is not set"))
    } else {
        Err("give a reference: \"file:PATH\" or \"env:NAME\"".into())
    }
}

/// A loaded plugin with scripted surroundings.
pub struct Harness {
    _host: PluginHost,
    plugin: Arc<LoadedPlugin>,
    audit: Arc<MemoryAudit>,
    fixtures: Arc<FixtureSet>,
    kv: Arc<MemStore>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.plugin.name())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Starts building a harness for the package at `path` (its directory,
    /// `plugin.toml` or component).
    pub fn builder(path: impl AsRef<Path>) -> HarnessBuilder {
        HarnessBuilder {
            path: path.as_ref().to_path_buf(),
            fixtures_dir: None,
            fixtures: Vec::new(),
            network: false,
            settings: Vec::new(),
            secrets: Vec::new(),
            signing_keys: Vec::new(),
            sftp: Vec::new(),
            clock: None,
            engine: EngineSettings::default(),
            limits: super::CallLimits::default(),
        }
    }

    /// The loaded plugin, for typed calls.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Calls an export by its WIT name with JSON input (see
    /// [`super::dynamic`]); a fresh idempotency key is made for the call.
    pub async fn call_json(
        &self,
        func: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, DynCallError> {
        let key = format!(
            "harness-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        call_json(&self.plugin, func, &key, input).await
    }

    /// Audit records of every HTTP attempt so far.
    pub fn audit(&self) -> Vec<HttpAuditRecord> {
        self.audit.records()
    }

    /// Audit records of every SFTP operation so far.
    pub fn sftp_audit(&self) -> Vec<SftpAuditRecord> {
        self.audit.sftp_records()
    }

    /// Adds a scripted response; it is matched before every fixture given
    /// earlier, so a test can change the next answer between calls.
    pub fn add_fixture(&self, fixture: Fixture) {
        self.fixtures.add(fixture);
    }

    /// The requests the fixtures received so far (with bodies).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.fixtures.received()
    }

    /// The plugin's state store (collection `plugin_kv`).
    pub fn state(&self) -> Arc<dyn RawStore> {
        self.kv.clone()
    }
}
