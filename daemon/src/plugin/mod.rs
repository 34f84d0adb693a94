//! The connector plugin host: sandboxed WebAssembly components that talk to
//! payers, EHRs and collection agencies on the practice's behalf.
//!
//! A connector handles patient data and credentials, so this module is a
//! security boundary. A plugin reaches only what it is granted: the host
//! imports of `billd:connector/host` (log, HTTP to allowed origins, its
//! declared settings and secrets, its own key-value state, the time), JWTs
//! signed with keys it never sees (`signing`, 0.2.0), files on SFTP
//! servers reached with credentials it never sees (`sftp`, 0.3.0) and, for
//! a payer connector, the earlier payers' adjudication of the claims of the
//! call it serves (`coordination`, 0.4.0), which the caller hands in with
//! the call ([`CallContext`]). WASI
//! is linked granting nothing. Every call gets a fresh instance from an
//! [`InstancePre`](wasmtime::component::InstancePre), a memory cap and a
//! wall-clock deadline; a trap, a limit or a malformed result fails that call
//! with a typed [`CallError`] and nothing else.
//!
//! # Layout
//! - [`engine`]: the wasmtime engine, its limits, the epoch ticker and the
//!   compiled-code cache (the only `unsafe` in billd).
//! - [`manifest`]: the `plugin.toml` of a package.
//! - [`config`]: the practice's `[[plugin]]` entries and `[plugin_trust]`.
//! - [`signing`]: optional ed25519 package signatures.
//! - [`http`], [`kv`], [`jwt`], [`sftp`], [`coordination`], `state`: the
//!   host imports.
//! - [`limits`]: the limits a plugin can run into and how a breach is
//!   reported ([`PluginEvents`]); [`logpump`]: plugin log lines written off
//!   the call's path.
//! - [`registry`]: the loaded plugins, swapped atomically on reload.
//! - [`dynamic`]: calls by function name with JSON (the CLI), and inspection.
//! - [`harness`]: runs a plugin against scripted HTTP for its author's tests.

pub mod bindings;
pub mod config;
#[cfg(test)]
pub(crate) mod contract_tests;
pub mod coordination;
pub mod dynamic;
pub mod engine;
pub mod harness;
pub mod http;
pub mod jwt;
pub mod kv;
pub mod limits;
pub mod logpump;
pub mod manifest;
pub mod registry;
pub mod sftp;
#[cfg(test)]
mod sftp_tests;
pub mod signing;
mod state;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
pub(crate) mod tests;

pub use bindings::types::ConnectorError;
pub use config::{CallLimits, Pin, PluginEntry, PluginPool, PluginSpec, PluginTrust};
pub use coordination::CallContext;
pub use engine::{EngineSettings, PluginEngine};
pub use http::{AuditSink, HttpAuditRecord, HttpBackend, MemoryAudit, TracingAudit};
pub use limits::{Limit, PluginEvents, TracingEvents};
pub use logpump::{LogOutput, TracingLog};
pub use manifest::{Manifest, World};
pub use registry::PluginRegistry;
pub use signing::SignatureStatus;

use crate::clock::SharedClock;
use crate::store::{RawStore, StoreKey};
use bindings::collections::{CollectionsConnector, CollectionsConnectorPre};
use bindings::ehr::{EhrConnector, EhrConnectorPre};
use bindings::payer::{PayerConnector, PayerConnectorPre};
use bindings::{collections_api as co, ehr_api as ehr, payer_api as pay};
use ed25519_dalek::VerifyingKey;
use manifest::{Origin, PackagePaths};
use state::{CallState, PluginShared};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{ComponentExportIndex, HasSelf, Linker};
use wasmtime::{Store, UpdateDeadline};

/// Why a plugin was refused at load. Each message names the plugin and the
/// file or field; none is fixed by retrying without a change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// `plugin.toml` is missing or wrong.
    #[error("plugin {plugin}: {problem}")]
    Manifest {
        /// The configured plugin name.
        plugin: String,
        /// The manifest problem (in the message, and deliberately not an
        /// error source, so a printed chain says it once).
        problem: manifest::ManifestError,
    },
    /// The configured name differs from the manifest's.
    #[error("plugin {configured}: the package at {path} is plugin {found:?}")]
    NameMismatch {
        /// The configured name.
        configured: String,
        /// The manifest's name.
        found: String,
        /// The package directory.
        path: String,
    },
    /// The component file could not be read.
    #[error("plugin {plugin}: cannot read component {path}: {reason}")]
    ComponentRead {
        /// The plugin.
        plugin: String,
        /// The component file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The component's sha256 is not the pinned one.
    #[error(
        "plugin {plugin}: refusing {path}: its sha256 is {actual} but the configuration pins {expected}; \
         if this build is intended, update `sha256` for this plugin"
    )]
    PinMismatch {
        /// The plugin.
        plugin: String,
        /// The component file.
        path: String,
        /// The pinned hash.
        expected: String,
        /// The file's hash.
        actual: String,
    },
    /// The package's signature does not verify, or a required one is
    /// missing or from an untrusted key.
    #[error("plugin {plugin}: refusing {path}: {reason}")]
    Signature {
        /// The plugin.
        plugin: String,
        /// The package directory.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Settings or secrets do not fit the manifest.
    #[error("plugin {plugin}: {problem}")]
    Config {
        /// The plugin.
        plugin: String,
        /// The field and problem.
        problem: config::PluginConfigProblem,
    },
    /// The component does not compile, or does not implement the world its
    /// manifest names, or imports something billd does not offer.
    #[error("plugin {plugin}: {reason}")]
    Component {
        /// The plugin.
        plugin: String,
        /// What wasmtime said.
        reason: String,
    },
}

/// Why a call failed before the plugin could answer. The plugin's own
/// answers, including its errors, come back as `Ok(Err(ConnectorError))`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The call ran past its wall-clock deadline and was stopped.
    #[error("plugin {plugin}: call stopped at its wall-clock deadline of {limit:?}")]
    Deadline {
        /// The plugin.
        plugin: String,
        /// The deadline.
        limit: Duration,
    },
    /// The plugin tried to grow its memory past the cap and failed.
    #[error("plugin {plugin}: call stopped at the memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The cap.
        limit_bytes: u64,
    },
    /// The plugin tried to move more data into the host in one transfer
    /// (its result, or a host call's arguments) than its limit allows.
    #[error(
        "plugin {plugin}: call stopped at the transfer limit of {limit_bytes} bytes (its result or a request was too large)"
    )]
    TransferLimit {
        /// The plugin.
        plugin: String,
        /// The limit.
        limit_bytes: u64,
    },
    /// The plugin panicked.
    #[error("plugin {plugin}: the plugin panicked{location}")]
    Panic {
        /// The plugin.
        plugin: String,
        /// ` at file:line:col` when the guest said where.
        location: String,
    },
    /// The plugin trapped (an invalid operation, an abort).
    #[error("plugin {plugin}: the plugin trapped: {reason}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap.
        reason: String,
    },
    /// Every instance slot of the engine's pool is taken by calls in flight
    /// (`[plugin_pool] instances`): this call did not start; retrying once
    /// others finish can help.
    #[error(
        "plugin {plugin}: call not started: the plugin instance pool ({limit} instances) is \
         full ({reason}); raise [plugin_pool] instances or lower job concurrency"
    )]
    PoolExhausted {
        /// The plugin.
        plugin: String,
        /// The pool's size in instances.
        limit: u32,
        /// Which of the pool's resources ran out, as wasmtime says.
        reason: String,
    },
    /// No instance could be made now: retrying can help.
    #[error("plugin {plugin}: could not start an instance: {reason}")]
    Instantiate {
        /// The plugin.
        plugin: String,
        /// What wasmtime said.
        reason: String,
    },
    /// The plugin does not implement the world this call needs.
    #[error("plugin {plugin} implements {actual}, not {wanted}")]
    WrongWorld {
        /// The plugin.
        plugin: String,
        /// The world the call needs.
        wanted: World,
        /// The plugin's world.
        actual: World,
    },
    /// The result could not be read (malformed strings or variants), or the
    /// call failed inside the host.
    #[error("plugin {plugin}: call failed: {reason}")]
    Failed {
        /// The plugin.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
}

impl CallError {
    /// Whether trying the same call again can help.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CallError::Instantiate { .. }
                | CallError::PoolExhausted { .. }
                | CallError::Deadline { .. }
        )
    }
}

/// What the host is built from: the engine's sizing and the daemon's
/// services the imports use.
pub struct HostOptions {
    /// Pool and limit sizing.
    pub engine: EngineSettings,
    /// Where compiled code is cached between runs (`None`: no cache). The
    /// cache is used only with a key to authenticate it: `cache_key`, or
    /// else `kv_key`.
    pub cache_dir: Option<PathBuf>,
    /// The key authenticating cached code (default: `kv_key`).
    pub cache_key: Option<Arc<StoreKey>>,
    /// Where HTTP requests go.
    pub http: HttpBackend,
    /// Where HTTP audit records go.
    pub audit: Arc<dyn AuditSink>,
    /// The store holding plugin state (collection `plugin_kv`).
    pub kv: Arc<dyn RawStore>,
    /// The store key; when given, plugin state is sealed with it.
    pub kv_key: Option<Arc<StoreKey>>,
    /// The clock behind the `now` import.
    pub clock: SharedClock,
    /// Trusted signing keys and whether signatures are required.
    pub trust: PluginTrust,
    /// Who hears about plugins reaching their limits.
    pub events: Arc<dyn PluginEvents>,
    /// Where plugin log lines are written (off the call's path).
    pub log: Arc<dyn LogOutput>,
}

impl HostOptions {
    /// Defaults around a store: network HTTP, audit into `tracing`, the
    /// system clock, no cache, no trusted keys.
    pub fn new(kv: Arc<dyn RawStore>) -> Result<Self, LoadError> {
        Ok(Self {
            engine: EngineSettings::default(),
            cache_dir: None,
            cache_key: None,
            http: HttpBackend::network().map_err(|reason| LoadError::Component {
                plugin: "(host)".into(),
                reason,
            })?,
            audit: Arc::new(TracingAudit),
            kv,
            kv_key: None,
            clock: Arc::new(crate::clock::SystemClock),
            trust: PluginTrust::default(),
            events: Arc::new(TracingEvents),
            log: Arc::new(TracingLog),
        })
    }
}

/// Loads plugins and runs their calls. One per daemon.
pub struct PluginHost {
    engine: PluginEngine,
    linker: Linker<CallState>,
    http: HttpBackend,
    audit: Arc<dyn AuditSink>,
    kv: Arc<dyn RawStore>,
    kv_key: Option<Arc<StoreKey>>,
    clock: SharedClock,
    trusted: BTreeMap<String, VerifyingKey>,
    require_signatures: bool,
    events: Arc<dyn PluginEvents>,
    log: Arc<logpump::LogPump>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("engine", &self.engine)
            .field("require_signatures", &self.require_signatures)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Builds the engine and the linker (host imports plus WASI granting
    /// nothing).
    pub fn new(opts: HostOptions) -> Result<Self, LoadError> {
        let host_err = |reason: String| LoadError::Component {
            plugin: "(host)".into(),
            reason,
        };
        let mut trusted = BTreeMap::new();
        for (name, text) in &opts.trust.keys {
            let key = config::parse_public_key(text).map_err(|e| LoadError::Config {
                plugin: "(trust)".into(),
                problem: config::PluginConfigProblem {
                    field: format!("plugin_trust.keys.{name}"),
                    reason: e,
                },
            })?;
            trusted.insert(name.clone(), key);
        }
        let cache = match (
            opts.cache_dir,
            opts.cache_key.or_else(|| opts.kv_key.clone()),
        ) {
            (Some(dir), Some(key)) => Some(engine::CodeCache { dir, key }),
            (Some(dir), None) => {
                tracing::debug!(cache = %dir.display(), "no store key to authenticate cached plugin code; not caching");
                None
            }
            (None, _) => None,
        };
        let engine = PluginEngine::new(opts.engine, cache).map_err(|e| host_err(e.to_string()))?;
        let mut linker = Linker::<CallState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| host_err(e.to_string()))?;
        bindings::types::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| host_err(e.to_string()))?;
        bindings::host_api::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| host_err(e.to_string()))?;
        bindings::signing_api::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| host_err(e.to_string()))?;
        bindings::sftp_api::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| host_err(e.to_string()))?;
        bindings::coordination_api::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| host_err(e.to_string()))?;
        let log = logpump::LogPump::start(opts.log)
            .map_err(|e| host_err(format!("starting the plugin log writer: {e}")))?;
        Ok(Self {
            engine,
            linker,
            http: opts.http,
            audit: opts.audit,
            kv: opts.kv,
            kv_key: opts.kv_key,
            clock: opts.clock,
            trusted,
            require_signatures: opts.trust.require_signatures,
            events: opts.events,
            log: Arc::new(log),
        })
    }

    /// The engine (for tools that inspect components).
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Loads one plugin: reads and checks the manifest, checks the sha256
    /// pin and the signature, resolves settings and secrets against the
    /// manifest, compiles (or loads cached code) and pre-instantiates it
    /// against its world.
    pub fn load(&self, spec: &PluginSpec) -> Result<Arc<LoadedPlugin>, LoadError> {
        let plugin = spec.name.clone();
        let paths = PackagePaths::locate(&spec.path);
        let manifest_text = std::fs::read(&paths.manifest).map_err(|e| LoadError::Manifest {
            plugin: plugin.clone(),
            problem: manifest::ManifestError::Read {
                path: paths.manifest.display().to_string(),
                reason: e.to_string(),
            },
        })?;
        let manifest = Manifest::parse(&String::from_utf8_lossy(&manifest_text), &paths.manifest)
            .map_err(|problem| LoadError::Manifest {
            plugin: plugin.clone(),
            problem,
        })?;
        if manifest.name != spec.name {
            return Err(LoadError::NameMismatch {
                configured: spec.name.clone(),
                found: manifest.name.clone(),
                path: paths.dir.display().to_string(),
            });
        }
        let component_path = paths.dir.join(manifest.component_file());
        let bytes = std::fs::read(&component_path).map_err(|e| LoadError::ComponentRead {
            plugin: plugin.clone(),
            path: component_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let sha256 = signing::sha256_hex(&bytes);
        if let Pin::Sha256(expected) = &spec.pin
            && *expected != sha256
        {
            return Err(LoadError::PinMismatch {
                plugin,
                path: component_path.display().to_string(),
                expected: expected.clone(),
                actual: sha256,
            });
        }
        let sig_text = match std::fs::read_to_string(paths.signature()) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(LoadError::Signature {
                    plugin,
                    path: paths.signature().display().to_string(),
                    reason: format!("cannot read the signature: {e}"),
                });
            }
        };
        let signature = signing::verify(
            sig_text.as_deref(),
            &sha256,
            &signing::sha256_hex(&manifest_text),
            &self.trusted,
        );
        let sig_refusal = match &signature {
            SignatureStatus::Invalid { reason } => Some(format!("its signature is invalid: {reason}")),
            SignatureStatus::Unsigned if self.require_signatures => {
                Some("it is unsigned and the configuration requires signatures".into())
            }
            SignatureStatus::UntrustedKey if self.require_signatures => Some(
                "it is signed by a key not listed in [plugin_trust] keys, and signatures are required"
                    .into(),
            ),
            _ => None,
        };
        if let Some(reason) = sig_refusal {
            return Err(LoadError::Signature {
                plugin,
                path: paths.dir.display().to_string(),
                reason,
            });
        }

        let cfg_err = |problem| LoadError::Config {
            plugin: plugin.clone(),
            problem,
        };
        let settings = config::resolve_settings(&manifest, &spec.settings).map_err(cfg_err)?;
        let given_secrets: Vec<&String> = spec.secrets.keys().collect();
        let given_keys: Vec<&String> = spec.signing_keys.keys().collect();
        for (table, what, declared, given) in [
            ("secrets", "secret", &manifest.secrets, given_secrets),
            (
                "signing_keys",
                "signing key",
                &manifest.signing_keys,
                given_keys,
            ),
        ] {
            if let Some(name) = given.iter().find(|n| !declared.contains_key(**n)) {
                return Err(cfg_err(config::PluginConfigProblem {
                    field: format!("{table}.{name}"),
                    reason: format!("plugin {:?} declares no such {what}", manifest.name),
                }));
            }
            if let Some((name, _)) = declared
                .iter()
                .find(|(n, s)| s.required && !given.contains(n))
            {
                return Err(cfg_err(config::PluginConfigProblem {
                    field: format!("{table}.{name}"),
                    reason: format!("plugin {:?} requires this {what}", manifest.name),
                }));
            }
        }

        // Every SFTP server the manifest requires must be configured, and
        // only declared ones may be.
        if let Some(name) = spec.sftp.keys().find(|n| !manifest.sftp.contains_key(*n)) {
            return Err(cfg_err(config::PluginConfigProblem {
                field: format!("sftp.{name}"),
                reason: format!("plugin {:?} declares no such SFTP server", manifest.name),
            }));
        }
        if let Some(name) = manifest
            .sftp
            .iter()
            .find(|(n, s)| s.required && !spec.sftp.contains_key(*n))
            .map(|(n, _)| n)
        {
            return Err(cfg_err(config::PluginConfigProblem {
                field: format!("sftp.{name}"),
                reason: format!(
                    "plugin {:?} uses this SFTP server: configure it ([plugin.sftp.{name}] with host, user, host_key and a password or private_key)",
                    manifest.name
                ),
            }));
        }

        let comp_err = |reason: String| LoadError::Component {
            plugin: plugin.clone(),
            reason,
        };
        let (component, from_cache) = self
            .engine
            .load_component(&component_path, &bytes, &sha256)
            .map_err(|e| comp_err(e.to_string()))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| comp_err(format!("cannot link against billd's imports: {e:#}")))?;
        let world_err = |e: wasmtime::Error| {
            comp_err(format!(
                "plugin.toml says world {}, but the component does not implement it: {e:#}",
                manifest.world
            ))
        };
        let pre = match manifest.world {
            World::PayerConnector => {
                WorldPre::Payer(PayerConnectorPre::new(pre).map_err(world_err)?)
            }
            World::EhrConnector => WorldPre::Ehr(EhrConnectorPre::new(pre).map_err(world_err)?),
            World::CollectionsConnector => {
                WorldPre::Collections(CollectionsConnectorPre::new(pre).map_err(world_err)?)
            }
        };

        let exports = world_exports(&component, manifest.world).map_err(comp_err)?;

        let manifest_origins = manifest.origins();
        let http =
            http::HttpPolicy::new(&manifest_origins, &spec.allowed_hosts, spec.limits.clone());
        let info = PluginInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            world: manifest.world,
            sha256,
            allowed_hosts: http.allowed.clone(),
            signature,
            description: manifest.description.clone(),
            from_cache,
            component_path,
        };
        let shared = Arc::new(PluginShared {
            name: manifest.name.clone(),
            settings,
            secrets: spec.secrets.clone(),
            signing_keys: spec.signing_keys.clone(),
            sftp: spec.sftp.clone(),
            http,
            backend: self.http.clone(),
            audit: self.audit.clone(),
            kv: kv::PluginKv::new(
                self.kv.clone(),
                self.kv_key.clone(),
                &manifest.name,
                kv::StateQuota {
                    max_value_bytes: spec.limits.max_kv_value_bytes,
                    max_keys: spec.limits.max_state_keys,
                    max_bytes: spec.limits.max_state_bytes,
                },
            ),
            clock: self.clock.clone(),
            limits: spec.limits.clone(),
            events: self.events.clone(),
            reported: limits::Reported::default(),
            log: self.log.clone(),
            log_rate: state::LogRate::new(&spec.limits),
        });
        Ok(Arc::new(LoadedPlugin {
            info,
            manifest,
            pre,
            exports,
            shared,
            engine: self.engine.clone(),
        }))
    }
}

/// What `billd plugins list` shows about a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its world.
    pub world: World,
    /// The component's sha256.
    pub sha256: String,
    /// Origins it may reach (manifest ∩ practice).
    #[serde(serialize_with = "origins_as_strings")]
    pub allowed_hosts: Vec<Origin>,
    /// What signature checking found.
    pub signature: SignatureStatus,
    /// The manifest's description.
    pub description: String,
    /// Whether compiled code came from the cache.
    pub from_cache: bool,
    /// The component file.
    pub component_path: PathBuf,
}

fn origins_as_strings<S: serde::Serializer>(o: &[Origin], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(o.iter().map(ToString::to_string))
}

/// The functions `world`'s interface exports, as the WIT names them (the
/// `calls!` list of its session): the fresh-instance calls look them up.
fn world_functions(world: World) -> &'static [&'static str] {
    match world {
        World::PayerConnector => PayerSession::FUNCTIONS,
        World::EhrConnector => EhrSession::FUNCTIONS,
        World::CollectionsConnector => CollectionsSession::FUNCTIONS,
    }
}

/// The export index of each function of `world` in `component` (looked up
/// once at load, so a call does not search by name).
fn world_exports(
    component: &wasmtime::component::Component,
    world: World,
) -> Result<Vec<(&'static str, ComponentExportIndex)>, String> {
    let interface = world.export_interface();
    let functions = world_functions(world);
    let iface = component
        .get_export_index(None, interface)
        .ok_or_else(|| format!("the component does not export {interface}"))?;
    functions
        .iter()
        .map(|f| {
            component
                .get_export_index(Some(&iface), f)
                .map(|index| (*f, index))
                .ok_or_else(|| format!("the component's {interface} has no function {f}"))
        })
        .collect()
}

enum WorldPre {
    Payer(PayerConnectorPre<CallState>),
    Ehr(EhrConnectorPre<CallState>),
    Collections(CollectionsConnectorPre<CallState>),
}

/// A plugin ready to call: pre-instantiated, with its configuration bound.
/// Every call runs in a fresh instance.
pub struct LoadedPlugin {
    info: PluginInfo,
    manifest: Manifest,
    pre: WorldPre,
    /// Each exported function's index, for fresh-instance calls.
    exports: Vec<(&'static str, ComponentExportIndex)>,
    shared: Arc<PluginShared>,
    engine: PluginEngine,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Waits, at most `limit`, until every log line the plugin wrote so far
    /// has reached the log output.
    pub fn settle_logs(&self, limit: std::time::Duration) {
        self.shared.log.settle(limit);
    }

    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    fn new_store(&self) -> Store<CallState> {
        let settings = self.engine.settings();
        let state = CallState::new(
            self.shared.clone(),
            settings.max_memory_bytes as usize,
            settings.max_table_elements,
        );
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Bounds what one lift (a result, a host call's arguments) may
        // allocate in the host, whatever the guest's memory holds.
        store.set_hostcall_fuel(
            usize::try_from(self.shared.limits.max_transfer_bytes).unwrap_or(usize::MAX),
        );
        // The ticker advances the epoch every tick; at each tick the guest
        // yields to the executor (so a busy plugin cannot starve other
        // calls) and is stopped once its deadline has passed.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let s = ctx.data_mut();
            if Instant::now() >= s.deadline {
                s.deadline_hit = true;
                Err(wasmtime::format_err!("wall-clock deadline reached"))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    fn wrong_world(&self, wanted: World) -> CallError {
        CallError::WrongWorld {
            plugin: self.info.name.clone(),
            wanted,
            actual: self.info.world,
        }
    }

    fn instantiate_error(&self, store: &Store<CallState>, e: wasmtime::Error) -> CallError {
        if store.data().limiter.memory_hit {
            return CallError::MemoryLimit {
                plugin: self.info.name.clone(),
                limit_bytes: self.engine.settings().max_memory_bytes,
            };
        }
        if let Some(full) = e
            .chain()
            .find_map(|c| c.downcast_ref::<wasmtime::PoolConcurrencyLimitError>())
        {
            return CallError::PoolExhausted {
                plugin: self.info.name.clone(),
                limit: self.engine.settings().max_concurrent_instances,
                reason: full.to_string(),
            };
        }
        CallError::Instantiate {
            plugin: self.info.name.clone(),
            reason: format!("{e:#}"),
        }
    }

    /// A fresh payer instance for one call (or, in benchmarks, several).
    pub async fn payer(&self) -> Result<PayerSession, CallError> {
        let WorldPre::Payer(pre) = &self.pre else {
            return Err(self.wrong_world(World::PayerConnector));
        };
        let mut store = self.new_store();
        match pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(PayerSession { store, bindings }),
            Err(e) => Err(self.instantiate_error(&store, e)),
        }
    }

    /// A fresh EHR instance for one call.
    pub async fn ehr(&self) -> Result<EhrSession, CallError> {
        let WorldPre::Ehr(pre) = &self.pre else {
            return Err(self.wrong_world(World::EhrConnector));
        };
        let mut store = self.new_store();
        match pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(EhrSession { store, bindings }),
            Err(e) => Err(self.instantiate_error(&store, e)),
        }
    }

    /// A fresh collections instance for one call.
    pub async fn collections(&self) -> Result<CollectionsSession, CallError> {
        let WorldPre::Collections(pre) = &self.pre else {
            return Err(self.wrong_world(World::CollectionsConnector));
        };
        let mut store = self.new_store();
        match pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(CollectionsSession { store, bindings }),
            Err(e) => Err(self.instantiate_error(&store, e)),
        }
    }

    /// The plugin's component with the engine it was compiled for, to read
    /// its import and export types ([`dynamic`]).
    pub(crate) fn component(&self) -> (&wasmtime::component::Component, &wasmtime::Engine) {
        let component = match &self.pre {
            WorldPre::Payer(p) => p.instance_pre().component(),
            WorldPre::Ehr(p) => p.instance_pre().component(),
            WorldPre::Collections(p) => p.instance_pre().component(),
        };
        (component, self.engine.engine())
    }

    /// A fresh instance of whatever world the plugin implements, for calls
    /// by name ([`dynamic`]).
    pub(crate) async fn raw_instance(
        &self,
    ) -> Result<(Store<CallState>, wasmtime::component::Instance), CallError> {
        let mut store = self.new_store();
        let pre = match &self.pre {
            WorldPre::Payer(p) => p.instance_pre(),
            WorldPre::Ehr(p) => p.instance_pre(),
            WorldPre::Collections(p) => p.instance_pre(),
        };
        match pre.instantiate_async(&mut store).await {
            Ok(i) => Ok((store, i)),
            Err(e) => Err(self.instantiate_error(&store, e)),
        }
    }
}

impl LoadedPlugin {
    /// Runs one export of `world` in a fresh instance. Only the function
    /// called is type-checked against the component (the world's bindings
    /// check every export of the world on each instantiation, which was
    /// about a sixth of a fresh call's cost; see `benches/plugin_call.rs`).
    async fn fresh_call<P, R>(
        &self,
        world: World,
        function: &'static str,
        context: CallContext,
        params: P,
    ) -> Result<R, CallError>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
        R: wasmtime::component::ComponentNamedList
            + wasmtime::component::Lift
            + Send
            + Sync
            + 'static,
    {
        if self.info.world != world {
            return Err(self.wrong_world(world));
        }
        let (mut store, instance) = self.raw_instance().await?;
        store.data_mut().context = context;
        let index = self
            .exports
            .iter()
            .find(|(name, _)| *name == function)
            .map(|(_, index)| index)
            .ok_or_else(|| CallError::Failed {
                plugin: self.info.name.clone(),
                reason: format!("the component exports no function {function}"),
            })?;
        let func = instance
            .get_typed_func::<P, R>(&mut store, index)
            .map_err(|e| CallError::Failed {
                plugin: self.info.name.clone(),
                reason: format!("{function}: {e:#}"),
            })?;
        let backstop = begin_call(&mut store);
        let result = tokio::time::timeout(backstop, func.call_async(&mut store, params)).await;
        finish_call(&mut store, result)
    }
}

/// Starts a call on `store`: resets its deadline and limit flags. Returns
/// the backstop timeout for the call.
pub(crate) fn begin_call(store: &mut Store<CallState>) -> Duration {
    store.data_mut().begin_call();
    // The epoch callback stops running guest code at the deadline; this
    // backstop also covers a guest parked in a host call (a WASI sleep).
    store.data().shared.limits.call_timeout + Duration::from_millis(250)
}

/// Ends a call: copies guest output into the log and turns a failure into
/// a [`CallError`].
pub(crate) fn finish_call<T>(
    store: &mut Store<CallState>,
    result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T, CallError> {
    let result = result.unwrap_or_else(|_| {
        store.data_mut().deadline_hit = true;
        Err(wasmtime::format_err!("wall-clock deadline reached"))
    });
    let stderr = store.data_mut().drain_output();
    http::flush_suppressed(&store.data().shared);
    result.map_err(|e| classify(store.data(), &stderr, e))
}

/// How wasmtime words running out of hostcall fuel (its error type is
/// private); the sandbox test of result amplification fails if this changes.
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

fn classify(state: &CallState, stderr: &str, e: wasmtime::Error) -> CallError {
    let plugin = state.shared.name.clone();
    if state.deadline_hit {
        return CallError::Deadline {
            plugin,
            limit: state.shared.limits.call_timeout,
        };
    }
    if state.limiter.memory_hit {
        return CallError::MemoryLimit {
            plugin,
            limit_bytes: state.limiter.max_memory_bytes as u64,
        };
    }
    if e.chain()
        .any(|c| c.to_string().contains(HOSTCALL_FUEL_EXHAUSTED))
    {
        state.shared.report(Limit::TransferSize);
        return CallError::TransferLimit {
            plugin,
            limit_bytes: state.shared.limits.max_transfer_bytes,
        };
    }
    if let Some(at) = stderr.find("panicked at ") {
        // Only the location: the panic message may hold patient data.
        let rest = &stderr[at + "panicked at ".len()..];
        let location: String = rest
            .split(['\n', ' '])
            .next()
            .unwrap_or("")
            .trim_end_matches(':')
            .chars()
            .take(200)
            .collect();
        return CallError::Panic {
            plugin,
            location: if location.is_empty() {
                String::new()
            } else {
                format!(" at {location}")
            },
        };
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return CallError::Trap {
            plugin,
            reason: trap.to_string(),
        };
    }
    CallError::Failed {
        plugin,
        reason: format!("{e:#}"),
    }
}

/// The result of a connector call: the plugin's own answer (which may be a
/// [`ConnectorError`]), or a [`CallError`] when it could not answer.
pub type CallResult<T> = Result<Result<T, ConnectorError>, CallError>;

/// A payer instance. The daemon makes one per call; reusing one across
/// calls would let one patient's data linger into the next call.
pub struct PayerSession {
    store: Store<CallState>,
    bindings: PayerConnector,
}

/// An EHR instance (one per call).
pub struct EhrSession {
    store: Store<CallState>,
    bindings: EhrConnector,
}

/// A collections instance (one per call).
pub struct CollectionsSession {
    store: Store<CallState>,
    bindings: CollectionsConnector,
}

macro_rules! calls {
    ($session:ident, $world:expr, $iface:ident;
     $( $(#[$doc:meta])* $name:ident => $call:ident $wit:literal ( $($arg:ident : $ty:ty as $pass:expr),* ) -> $ok:ty; )*) => {
        impl $session {
            /// The functions of the world's interface, as the WIT names them.
            const FUNCTIONS: &'static [&'static str] = &[$($wit),*];

            $(
                $(#[$doc])*
                pub async fn $name(&mut self, key: &str $(, $arg: $ty)*) -> CallResult<$ok> {
                    let key = key.to_string();
                    let backstop = begin_call(&mut self.store);
                    let result = tokio::time::timeout(
                        backstop,
                        self.bindings.$iface().$call(&mut self.store, &key $(, $pass)*),
                    )
                    .await;
                    finish_call(&mut self.store, result)
                }
            )*
        }
        impl LoadedPlugin {
            $(
                $(#[$doc])*
                ///
                /// Runs in a fresh instance.
                pub async fn $name(&self, key: &str $(, $arg: $ty)*) -> CallResult<$ok> {
                    let (answer,) = self
                        .fresh_call::<(&str, $($ty,)*), (Result<$ok, ConnectorError>,)>(
                            $world,
                            $wit,
                            CallContext::default(),
                            (key, $($arg,)*),
                        )
                        .await?;
                    Ok(answer)
                }
            )*
        }
    };
}

calls! { PayerSession, World::PayerConnector, billd_connector0_1_0_payer;
    /// Asks whether a patient is covered on a date.
    check_eligibility => call_check_eligibility "check-eligibility"(inquiry: &pay::EligibilityInquiry as inquiry) -> pay::Eligibility;
    /// Asks where a batch of claims stands.
    claim_status => call_claim_status "claim-status"(inquiries: &[pay::StatusInquiry] as inquiries) -> Vec<pay::StatusResponse>;
    /// Sends a batch of claims.
    submit_claims => call_submit_claims "submit-claims"(claims: &[pay::Claim] as claims) -> pay::SubmissionReceipt;
    /// Fetches 999 and 277CA outcomes since the cursor.
    fetch_acknowledgments => call_fetch_acknowledgments "fetch-acknowledgments"(since: Option<&str> as since.map(str::to_string).as_ref()) -> pay::AcknowledgmentPage;
    /// Fetches remittances since the cursor.
    fetch_remittances => call_fetch_remittances "fetch-remittances"(since: Option<&str> as since.map(str::to_string).as_ref()) -> pay::RemittancePage;
}

calls! { EhrSession, World::EhrConnector, billd_connector0_1_0_ehr;
    /// Appointments starting inside the window.
    appointments => call_appointments "appointments"(window: ehr::Window as window) -> Vec<ehr::Appointment>;
    /// Patients changed since the cursor.
    patients_changed => call_patients_changed "patients-changed"(since: Option<&str> as since.map(str::to_string).as_ref()) -> ehr::PatientPage;
    /// Coverages changed since the cursor.
    coverages_changed => call_coverages_changed "coverages-changed"(since: Option<&str> as since.map(str::to_string).as_ref()) -> ehr::CoveragePage;
    /// Encounters (with charges) changed since the cursor.
    encounters_changed => call_encounters_changed "encounters-changed"(since: Option<&str> as since.map(str::to_string).as_ref()) -> ehr::EncounterPage;
}

calls! { CollectionsSession, World::CollectionsConnector, billd_connector0_1_0_collections;
    /// Hands accounts to the agency.
    place_accounts => call_place_accounts "place-accounts"(placements: &[co::Placement] as placements) -> Vec<co::PlacementReceipt>;
    /// Calls accounts back.
    recall_accounts => call_recall_accounts "recall-accounts"(recalls: &[co::Recall] as recalls) -> Vec<co::RecallReceipt>;
    /// Payments, disputes and closures since the cursor.
    fetch_agency_updates => call_fetch_agency_updates "fetch-agency-updates"(since: Option<&str> as since.map(str::to_string).as_ref()) -> co::AgencyUpdatePage;
}

impl LoadedPlugin {
    /// Sends a batch of claims with `context`: during the call, the
    /// plugin's `coordination` import answers from it, and only for the
    /// claims of this batch (whatever else `context` holds is dropped
    /// first). [`LoadedPlugin::submit_claims`] is this with an empty
    /// context.
    ///
    /// Runs in a fresh instance.
    pub async fn submit_claims_with(
        &self,
        key: &str,
        claims: &[pay::Claim],
        context: CallContext,
    ) -> CallResult<pay::SubmissionReceipt> {
        let (answer,) = self
            .fresh_call::<(&str, &[pay::Claim]), (Result<pay::SubmissionReceipt, ConnectorError>,)>(
                World::PayerConnector,
                "submit-claims",
                context.only_for(claims),
                (key, claims),
            )
            .await?;
        Ok(answer)
    }
}

/// Reads a package's manifest and component hash without loading it (for
/// `billd plugins sign` and `inspect`).
pub fn package_hashes(path: &Path) -> Result<(Manifest, PathBuf, String, String), LoadError> {
    let paths = PackagePaths::locate(path);
    let plugin = path.display().to_string();
    let manifest_bytes = std::fs::read(&paths.manifest).map_err(|e| LoadError::Manifest {
        plugin: plugin.clone(),
        problem: manifest::ManifestError::Read {
            path: paths.manifest.display().to_string(),
            reason: e.to_string(),
        },
    })?;
    let manifest = Manifest::parse(&String::from_utf8_lossy(&manifest_bytes), &paths.manifest)
        .map_err(|problem| LoadError::Manifest {
            plugin: plugin.clone(),
            problem,
        })?;
    let component = paths.dir.join(manifest.component_file());
    let bytes = std::fs::read(&component).map_err(|e| LoadError::ComponentRead {
        plugin,
        path: component.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((
        manifest,
        component,
        signing::sha256_hex(&bytes),
        signing::sha256_hex(&manifest_bytes),
    ))
}
