//! How a practice's configuration lists its plugins.
//!
//! These are the serde types the main configuration embeds as `[[plugin]]`
//! and `[plugin_trust]`; the host itself never reads the configuration file
//! (it takes a resolved [`PluginSpec`]), so this module depends on nothing
//! else in billd. Secrets stay references (`env:NAME`, `file:PATH`) here;
//! whoever builds a [`PluginSpec`] resolves them.
//!
//! ```toml
//! [[plugin]]
//! name = "sandbox-payer"
//! path = "plugins/sandbox-payer"
//! sha256 = "9f2c…"                 # required unless `unpinned = true`
//! allowed_hosts = ["http://127.0.0.1:8089"]
//! settings = { base-url = "http://127.0.0.1:8089" }
//! secrets = { api-key = "env:SANDBOX_PAYER_KEY" }
//! signing_keys = { smart = { key = "file:/etc/billd/smart.pem", kid = "k1" } }
//!
//! [plugin.sftp.clearinghouse]      # contract 0.3.0 `sftp`, see `sftp`
//! host = "sftp.clearinghouse.example"
//! user = "practice-1234"
//! host_key = "ssh-ed25519 AAAA…"
//! private_key = "file:/etc/billd/clearinghouse-key"
//!
//! [plugin_trust]
//! require_signatures = false
//! keys = { billd-dev = "base64 ed25519 public key" }
//! ```

use super::jwt::{SigningKey, SigningKeyRef};
use super::manifest::{Origin, SettingValue, valid_name};
use super::sftp::{SftpServer, SftpServerRef};
use base64::Engine as _;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One `[[plugin]]` entry of the practice's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// The name jobs use to reach the plugin; must equal the manifest's.
    pub name: String,
    /// The package directory (holding `plugin.toml`), relative to the
    /// configuration file's directory unless absolute.
    pub path: PathBuf,
    /// The component's sha256 in hex. Required unless `unpinned = true`.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Loads the component whatever its hash. For development only.
    #[serde(default)]
    pub unpinned: bool,
    /// Setting values, by the names the manifest declares.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// Secret references (`env:NAME` or `file:PATH`) by the names the
    /// manifest declares.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Private keys billd signs with for the plugin (contract 0.2.0
    /// `signing`), by the names the manifest declares: a PEM key by
    /// reference and the `kid` to put in each token's header.
    #[serde(default)]
    pub signing_keys: BTreeMap<String, SigningKeyRef>,
    /// SFTP servers billd reaches for the plugin (contract 0.3.0 `sftp`),
    /// by the names the manifest declares (`[plugin.sftp.NAME]`): where,
    /// who, the pinned host key and the credential by reference.
    #[serde(default)]
    pub sftp: BTreeMap<String, SftpServerRef>,
    /// Origins (`scheme://host[:port]`) the practice lets this plugin reach;
    /// a request must be allowed here and by the manifest.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Requests per second the plugin may send (default 10).
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// Wall-clock limit for one call, in seconds (default 30).
    #[serde(default)]
    pub call_timeout_secs: Option<u64>,
    /// Quotas and rate limits other than the two above (`[plugin.limits]`);
    /// each one left out keeps its default.
    #[serde(default)]
    pub limits: LimitOverrides,
}

/// The `limits` table of a `[[plugin]]` entry. Every field is optional and
/// at least 1; the defaults are those of [`CallLimits::default`].
///
/// ```toml
/// [plugin.limits]
/// state_max_keys = 1000
/// log_lines_per_minute = 600
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Keys the plugin's state may hold.
    #[serde(default)]
    pub state_max_keys: Option<u64>,
    /// Bytes (keys plus stored values) the plugin's state may hold.
    #[serde(default)]
    pub state_max_bytes: Option<u64>,
    /// Log lines kept from one call.
    #[serde(default)]
    pub log_lines_per_call: Option<u32>,
    /// Log bytes kept from one call.
    #[serde(default)]
    pub log_bytes_per_call: Option<u64>,
    /// Log lines kept per minute across calls.
    #[serde(default)]
    pub log_lines_per_minute: Option<u32>,
    /// Log bytes kept per minute across calls.
    #[serde(default)]
    pub log_bytes_per_minute: Option<u32>,
    /// HTTP audit records written per second (the rest are counted).
    #[serde(default)]
    pub audit_records_per_second: Option<u32>,
    /// Headers one request may carry.
    #[serde(default)]
    pub request_max_headers: Option<u32>,
    /// Total bytes of one request's header names and values.
    #[serde(default)]
    pub request_max_header_bytes: Option<u32>,
    /// Bytes one call may transfer into the host in one go (its result, or
    /// one host call's arguments).
    #[serde(default)]
    pub transfer_max_bytes: Option<u64>,
}

impl LimitOverrides {
    /// The fields given as 0 (each must be at least 1).
    fn zeros(&self) -> Vec<&'static str> {
        let fields: [(&'static str, Option<u64>); 10] = [
            ("state_max_keys", self.state_max_keys),
            ("state_max_bytes", self.state_max_bytes),
            ("log_lines_per_call", self.log_lines_per_call.map(u64::from)),
            ("log_bytes_per_call", self.log_bytes_per_call),
            (
                "log_lines_per_minute",
                self.log_lines_per_minute.map(u64::from),
            ),
            (
                "log_bytes_per_minute",
                self.log_bytes_per_minute.map(u64::from),
            ),
            (
                "audit_records_per_second",
                self.audit_records_per_second.map(u64::from),
            ),
            (
                "request_max_headers",
                self.request_max_headers.map(u64::from),
            ),
            (
                "request_max_header_bytes",
                self.request_max_header_bytes.map(u64::from),
            ),
            ("transfer_max_bytes", self.transfer_max_bytes),
        ];
        fields
            .into_iter()
            .filter(|(_, v)| *v == Some(0))
            .map(|(n, _)| n)
            .collect()
    }

    /// Applies the given fields over `limits`.
    pub fn apply(&self, limits: &mut CallLimits) {
        let l = limits;
        if let Some(v) = self.state_max_keys {
            l.max_state_keys = v.max(1);
        }
        if let Some(v) = self.state_max_bytes {
            l.max_state_bytes = v.max(1);
        }
        if let Some(v) = self.log_lines_per_call {
            l.max_log_lines_per_call = v.max(1);
        }
        if let Some(v) = self.log_bytes_per_call {
            l.max_log_bytes_per_call = v.max(1);
        }
        if let Some(v) = self.log_lines_per_minute {
            l.max_log_lines_per_minute = v.max(1);
        }
        if let Some(v) = self.log_bytes_per_minute {
            l.max_log_bytes_per_minute = v.max(1);
        }
        if let Some(v) = self.audit_records_per_second {
            l.max_audit_records_per_second = v.max(1);
        }
        if let Some(v) = self.request_max_headers {
            l.max_request_headers = v.max(1) as usize;
        }
        if let Some(v) = self.request_max_header_bytes {
            l.max_request_header_bytes = v.max(1) as usize;
        }
        if let Some(v) = self.transfer_max_bytes {
            l.max_transfer_bytes = v.max(1);
        }
    }
}

/// The `[plugin_trust]` section: who may sign plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginTrust {
    /// Refuse plugins without a valid signature from a trusted key.
    #[serde(default)]
    pub require_signatures: bool,
    /// Trusted ed25519 public keys (base64 of the 32 bytes), by a name
    /// shown in `billd plugins list`.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

/// The `[plugin_pool]` section: the instance pool every plugin call takes
/// its instance from. Each call in flight holds one instance (its memory,
/// tables and async stack come from slots reserved when the daemon starts),
/// so `instances` bounds the calls that may run at once across all plugins;
/// a call that finds the pool full fails with a retryable error naming this
/// setting, and nothing else is affected.
///
/// ```toml
/// [plugin_pool]
/// instances = 64
/// max_memory_bytes = 67108864
/// keep_resident_bytes = 1048576
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginPool {
    /// Plugin instances that may exist at once across all plugins (calls in
    /// flight). Default 64, at most 1024; at least the sum of every job's `concurrency`,
    /// so the jobs the runner may run at once never find the pool full.
    pub instances: u32,
    /// The cap on one instance's linear memory, in bytes. Default 64 MiB;
    /// between 1 MiB and 4 GiB.
    pub max_memory_bytes: u64,
    /// How many bytes of an instance's memory that a call wrote are put
    /// back in place (and stay resident for the next call) when the call
    /// ends, instead of being returned to the kernel and faulted in again.
    /// Default 1 MiB; at most `max_memory_bytes`; 0 returns every page.
    pub keep_resident_bytes: u64,
}

impl Default for PluginPool {
    fn default() -> Self {
        let e = super::engine::EngineSettings::default();
        Self {
            instances: e.max_concurrent_instances,
            max_memory_bytes: e.max_memory_bytes,
            keep_resident_bytes: e.memory_keep_resident_bytes as u64,
        }
    }
}

/// The smallest memory cap `[plugin_pool]` accepts: a Rust guest's stack
/// and data alone take about this much.
const MIN_POOL_MEMORY: u64 = 1 << 20;
/// The most instances `[plugin_pool]` accepts: each reserves two memory
/// slots of address space (about 4 GiB each) when the engine starts, so
/// 1024 reserve about 8 TiB of the process's 128 TiB.
const MAX_POOL_INSTANCES: u32 = 1024;
/// The largest memory cap: a 32-bit linear memory.
const MAX_POOL_MEMORY: u64 = 4 << 30;

impl PluginPool {
    /// The engine settings this section gives (the rest at their defaults).
    pub fn engine_settings(&self) -> super::engine::EngineSettings {
        super::engine::EngineSettings {
            max_concurrent_instances: self.instances,
            max_memory_bytes: self.max_memory_bytes,
            memory_keep_resident_bytes: usize::try_from(self.keep_resident_bytes)
                .unwrap_or(usize::MAX),
            ..super::engine::EngineSettings::default()
        }
    }

    /// The problems of this section, given the most plugin calls the
    /// configured jobs may have in flight at once (the sum of their
    /// concurrency).
    pub fn validate(&self, calls_at_once: usize) -> Vec<PluginConfigProblem> {
        let mut problems = Vec::new();
        let mut p = |field: &str, reason: String| {
            problems.push(PluginConfigProblem {
                field: format!("plugin_pool.{field}"),
                reason,
            })
        };
        if self.instances == 0 {
            p("instances", "must be at least 1".into());
        } else if self.instances > MAX_POOL_INSTANCES {
            p(
                "instances",
                format!(
                    "must be at most {MAX_POOL_INSTANCES} (each instance reserves address space \
                     for its memories at start-up), not {}",
                    self.instances
                ),
            );
        } else if (self.instances as usize) < calls_at_once {
            p(
                "instances",
                format!(
                    "is {} but the jobs may run {calls_at_once} work items at once (the sum of \
                     their concurrency); raise it to at least {calls_at_once} or lower job concurrency",
                    self.instances
                ),
            );
        }
        if !(MIN_POOL_MEMORY..=MAX_POOL_MEMORY).contains(&self.max_memory_bytes) {
            p(
                "max_memory_bytes",
                format!(
                    "must be between {MIN_POOL_MEMORY} (1 MiB) and {MAX_POOL_MEMORY} (4 GiB), not {}",
                    self.max_memory_bytes
                ),
            );
        }
        if self.keep_resident_bytes > self.max_memory_bytes {
            p(
                "keep_resident_bytes",
                format!(
                    "must be at most max_memory_bytes ({}), not {}",
                    self.max_memory_bytes, self.keep_resident_bytes
                ),
            );
        }
        problems
    }
}

/// One problem in the plugin configuration, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PluginConfigProblem {
    /// The field, e.g. `plugin[1].sha256` or `plugin_trust.keys.acme`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Checks the entries and the trust section without touching any file;
/// returns every problem found (empty when all is well).
pub fn validate(entries: &[PluginEntry], trust: &PluginTrust) -> Vec<PluginConfigProblem> {
    let mut problems = Vec::new();
    let mut p =
        |field: String, reason: String| problems.push(PluginConfigProblem { field, reason });
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |f: &str| format!("plugin[{i}].{f}");
        if !valid_name(&e.name) {
            p(
                at("name"),
                "use 1 to 64 lower-case letters, digits and '-'".into(),
            );
        } else if !seen.insert(e.name.clone()) {
            p(at("name"), format!("{:?} is listed twice", e.name));
        }
        if e.path.as_os_str().is_empty() {
            p(at("path"), "must not be empty".into());
        }
        match (&e.sha256, e.unpinned) {
            (None, false) => p(
                at("sha256"),
                "a sha256 pin is required (or set `unpinned = true` for development)".into(),
            ),
            (Some(_), true) => p(
                at("unpinned"),
                "give either a sha256 pin or `unpinned = true`, not both".into(),
            ),
            (Some(h), false) if parse_sha256(h).is_none() => {
                p(at("sha256"), "must be 64 hexadecimal digits".into())
            }
            _ => {}
        }
        for (j, h) in e.allowed_hosts.iter().enumerate() {
            if let Err(r) = Origin::parse(h) {
                p(at(&format!("allowed_hosts[{j}]")), r);
            }
        }
        for (name, r) in &e.secrets {
            if !is_reference(r) {
                // The value is not repeated: it may be the secret itself.
                p(
                    at(&format!("secrets.{name}")),
                    "secrets by reference only: \"env:NAME\" or \"file:PATH\"".into(),
                );
            }
        }
        for (name, k) in &e.signing_keys {
            if !is_reference(&k.key) {
                p(
                    at(&format!("signing_keys.{name}.key")),
                    "keys by reference only: \"env:NAME\" or \"file:PATH\"".into(),
                );
            }
            if k.kid.as_deref().is_some_and(|kid| kid.trim().is_empty()) {
                p(
                    at(&format!("signing_keys.{name}.kid")),
                    "must not be empty (leave it out for no kid)".into(),
                );
            }
        }
        for (name, server) in &e.sftp {
            for problem in server.validate() {
                p(
                    at(&format!("sftp.{name}.{}", problem.field)),
                    problem.reason,
                );
            }
        }
        if e.rate_limit_per_second == Some(0) {
            p(at("rate_limit_per_second"), "must be at least 1".into());
        }
        if matches!(e.call_timeout_secs, Some(0) | Some(601..)) {
            p(at("call_timeout_secs"), "must be between 1 and 600".into());
        }
        for f in e.limits.zeros() {
            p(at(&format!("limits.{f}")), "must be at least 1".into());
        }
    }
    for (name, key) in &trust.keys {
        if let Err(r) = parse_public_key(key) {
            p(format!("plugin_trust.keys.{name}"), r);
        }
    }
    if trust.require_signatures && trust.keys.is_empty() {
        p(
            "plugin_trust.require_signatures".into(),
            "signatures are required but no trusted key is listed".into(),
        );
    }
    problems
}

/// Whether `r` is a secret reference (`env:NAME` or `file:PATH`) rather
/// than a value written into the configuration.
fn is_reference(r: &str) -> bool {
    r.starts_with("env:") || r.starts_with("file:")
}

/// Parses a hex sha256 (any case) into its canonical lower-case form.
pub fn parse_sha256(text: &str) -> Option<String> {
    let t = text.trim();
    (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

/// Parses a base64 ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an ed25519 public key is 32 bytes".to_string())?;
    ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|e| format!("not an ed25519 key: {e}"))
}

/// How a component's identity is checked at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// The component's sha256 must be this (lower-case hex).
    Sha256(String),
    /// Any component is accepted (development only).
    Unpinned,
}

/// The limits one plugin's calls run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock limit for one call, enforced by epoch interruption.
    pub call_timeout: Duration,
    /// Limit for one HTTP request (also bounded by what is left of the call).
    pub http_timeout: Duration,
    /// The largest HTTP response body the host reads.
    pub max_response_bytes: u64,
    /// The largest HTTP request body the host sends.
    pub max_request_bytes: u64,
    /// Requests per second.
    pub requests_per_second: u32,
    /// The largest value in the plugin's key-value state.
    pub max_kv_value_bytes: usize,
    /// Keys the plugin's state may hold in total. 10,000 is far above what a
    /// connector keeps (cursors, tokens, idempotency records of recent work).
    pub max_state_keys: u64,
    /// Bytes (keys plus stored values) the plugin's state may hold in total:
    /// 64 MiB, so a runaway plugin cannot fill the store's disk.
    pub max_state_bytes: u64,
    /// Log lines kept from one call (`log` and guest output together).
    pub max_log_lines_per_call: u32,
    /// Log bytes kept from one call.
    pub max_log_bytes_per_call: u64,
    /// Log lines kept per minute across the plugin's calls.
    pub max_log_lines_per_minute: u32,
    /// Log bytes kept per minute across the plugin's calls.
    pub max_log_bytes_per_minute: u32,
    /// HTTP audit records written per second (with a burst of five seconds'
    /// worth); attempts beyond are counted into the next record written.
    pub max_audit_records_per_second: u32,
    /// Headers one request may carry.
    pub max_request_headers: usize,
    /// Total bytes of one request's header names and values.
    pub max_request_header_bytes: usize,
    /// Bytes one call may move into the host in one transfer (its result,
    /// or one host call's arguments), counted as wasmtime's hostcall fuel
    /// does: the host-side size of the lifted values. The host never holds
    /// more than this (plus allocator overhead) of one result, and 32 MiB is
    /// at most half the daemon's guest memory cap.
    pub max_transfer_bytes: u64,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            http_timeout: Duration::from_secs(20),
            max_response_bytes: 8 << 20,
            max_request_bytes: 8 << 20,
            requests_per_second: 10,
            max_kv_value_bytes: 256 << 10,
            max_state_keys: 10_000,
            max_state_bytes: 64 << 20,
            max_log_lines_per_call: 1_000,
            max_log_bytes_per_call: 256 << 10,
            max_log_lines_per_minute: 3_000,
            max_log_bytes_per_minute: 1 << 20,
            max_audit_records_per_second: 20,
            max_request_headers: 64,
            max_request_header_bytes: 32 << 10,
            max_transfer_bytes: 32 << 20,
        }
    }
}

/// Everything the host needs to load one plugin, with secrets resolved.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The configured name (must match the manifest).
    pub name: String,
    /// The package directory (or its manifest or component file).
    pub path: PathBuf,
    /// The identity check.
    pub pin: Pin,
    /// Setting values from the configuration, still untyped.
    pub settings: BTreeMap<String, toml::Value>,
    /// Resolved secret values.
    pub secrets: BTreeMap<String, SecretString>,
    /// Parsed signing keys.
    pub signing_keys: BTreeMap<String, SigningKey>,
    /// SFTP servers, with credentials resolved.
    pub sftp: BTreeMap<String, SftpServer>,
    /// Origins the practice allows.
    pub allowed_hosts: Vec<Origin>,
    /// Limits for its calls.
    pub limits: CallLimits,
}

impl PluginSpec {
    /// A spec for running a package directly (the CLI's `call`, the
    /// harness): unpinned, allowing whatever the manifest allows.
    pub fn unpinned(name: &str, path: &Path) -> PluginSpec {
        PluginSpec {
            name: name.to_string(),
            path: path.to_path_buf(),
            pin: Pin::Unpinned,
            settings: BTreeMap::new(),
            secrets: BTreeMap::new(),
            signing_keys: BTreeMap::new(),
            sftp: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            limits: CallLimits::default(),
        }
    }
}

impl PluginEntry {
    /// An unpinned entry with nothing else set, for tests to fill in.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, path: &Path) -> PluginEntry {
        PluginEntry {
            name: name.into(),
            path: path.to_path_buf(),
            sha256: None,
            unpinned: true,
            settings: BTreeMap::new(),
            secrets: BTreeMap::new(),
            signing_keys: BTreeMap::new(),
            sftp: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            rate_limit_per_second: None,
            call_timeout_secs: None,
            limits: LimitOverrides::default(),
        }
    }

    /// Builds the host's spec: resolves the path against `base_dir` and each
    /// secret reference through `resolve` (which must not put the value in
    /// its error). Errors name the field.
    pub fn to_spec(
        &self,
        index: usize,
        base_dir: &Path,
        resolve: &dyn Fn(&str) -> Result<SecretString, String>,
    ) -> Result<PluginSpec, PluginConfigProblem> {
        let problem = |f: &str, reason: String| PluginConfigProblem {
            field: format!("plugin[{index}].{f}"),
            reason,
        };
        let pin = match (&self.sha256, self.unpinned) {
            (Some(h), false) => Pin::Sha256(
                parse_sha256(h)
                    .ok_or_else(|| problem("sha256", "must be 64 hexadecimal digits".into()))?,
            ),
            (None, true) => Pin::Unpinned,
            (None, false) => {
                return Err(problem(
                    "sha256",
                    "a sha256 pin is required (or set `unpinned = true` for development)".into(),
                ));
            }
            (Some(_), true) => {
                return Err(problem(
                    "unpinned",
                    "give either a sha256 pin or `unpinned = true`, not both".into(),
                ));
            }
        };
        let mut secrets = BTreeMap::new();
        for (name, r) in &self.secrets {
            let v = resolve(r).map_err(|e| problem(&format!("secrets.{name}"), e))?;
            secrets.insert(name.clone(), v);
        }
        let mut signing_keys = BTreeMap::new();
        for (name, k) in &self.signing_keys {
            let field = format!("signing_keys.{name}.key");
            let pem = resolve(&k.key).map_err(|e| problem(&field, e))?;
            let key = SigningKey::from_pem(&pem, k.kid.clone())
                .map_err(|e| problem(&field, e.to_string()))?;
            signing_keys.insert(name.clone(), key);
        }
        let mut sftp = BTreeMap::new();
        for (name, server) in &self.sftp {
            let resolved = server
                .resolve(resolve)
                .map_err(|e| problem(&format!("sftp.{name}.{}", e.field), e.reason))?;
            sftp.insert(name.clone(), resolved);
        }
        let mut allowed_hosts = Vec::new();
        for (j, h) in self.allowed_hosts.iter().enumerate() {
            allowed_hosts
                .push(Origin::parse(h).map_err(|e| problem(&format!("allowed_hosts[{j}]"), e))?);
        }
        let mut limits = CallLimits::default();
        if let Some(r) = self.rate_limit_per_second {
            limits.requests_per_second = r.max(1);
        }
        if let Some(t) = self.call_timeout_secs {
            limits.call_timeout = Duration::from_secs(t.clamp(1, 600));
        }
        self.limits.apply(&mut limits);
        let path = if self.path.is_absolute() {
            self.path.clone()
        } else {
            base_dir.join(&self.path)
        };
        Ok(PluginSpec {
            name: self.name.clone(),
            path,
            pin,
            settings: self.settings.clone(),
            secrets,
            signing_keys,
            sftp,
            allowed_hosts,
            limits,
        })
    }
}

/// Resolves the configured settings against the manifest's declarations:
/// unknown names, wrong types and missing required values are errors naming
/// the setting.
pub fn resolve_settings(
    manifest: &super::manifest::Manifest,
    given: &BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, SettingValue>, PluginConfigProblem> {
    let mut out = BTreeMap::new();
    for (name, value) in given {
        let spec = manifest
            .settings
            .get(name)
            .ok_or_else(|| PluginConfigProblem {
                field: format!("settings.{name}"),
                reason: format!("plugin {:?} declares no such setting", manifest.name),
            })?;
        let v = SettingValue::from_toml(spec.ty, value).ok_or_else(|| PluginConfigProblem {
            field: format!("settings.{name}"),
            reason: format!("expected a {:?}", spec.ty).to_lowercase(),
        })?;
        out.insert(name.clone(), v);
    }
    for (name, spec) in &manifest.settings {
        if out.contains_key(name) {
            continue;
        }
        match &spec.default {
            Some(d) => {
                if let Some(v) = SettingValue::from_toml(spec.ty, d) {
                    out.insert(name.clone(), v);
                }
            }
            None if spec.required => {
                return Err(PluginConfigProblem {
                    field: format!("settings.{name}"),
                    reason: format!("plugin {:?} requires this setting", manifest.name),
                });
            }
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<PluginEntry>, PluginTrust) {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            plugin: Vec<PluginEntry>,
            #[serde(default)]
            plugin_trust: PluginTrust,
        }
        let d: Doc = toml::from_str(text).unwrap();
        (d.plugin, d.plugin_trust)
    }

    #[test]
    fn a_pinned_entry_is_valid() {
        let (e, t) = parse(&format!(
            r#"
[[plugin]]
name = "sandbox-payer"
path = "plugins/sandbox-payer"
sha256 = "{}"
allowed_hosts = ["http://127.0.0.1:8089"]
settings = {{ base-url = "http://127.0.0.1:8089" }}
secrets = {{ api-key = "env:SANDBOX_KEY" }}
"#,
            "A".repeat(64)
        ));
        assert!(validate(&e, &t).is_empty(), "{:?}", validate(&e, &t));
        let spec = e[0]
            .to_spec(0, Path::new("/etc/billd"), &|_| Ok(SecretString::from("k")))
            .unwrap();
        assert_eq!(spec.pin, Pin::Sha256("a".repeat(64)));
        assert_eq!(spec.path, Path::new("/etc/billd/plugins/sandbox-payer"));
    }

    #[test]
    fn problems_name_the_field() {
        let (e, t) = parse(
            r#"
[[plugin]]
name = "a"
path = "p"

[[plugin]]
name = "b"
path = "p"
sha256 = "xyz"
allowed_hosts = ["ftp://x"]
secrets = { api-key = "hunter2" }

[plugin_trust]
require_signatures = true
keys = { bad = "not-base64!" }
"#,
        );
        let fields: Vec<String> = validate(&e, &t).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "plugin[0].sha256",
                "plugin[1].sha256",
                "plugin[1].allowed_hosts[0]",
                "plugin[1].secrets.api-key",
                "plugin_trust.keys.bad",
            ]
        );
        let all = validate(&e, &t)
            .iter()
            .map(ToString::to_string)
            .collect::<String>();
        assert!(
            !all.contains("hunter2"),
            "a literal secret was echoed: {all}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<PluginEntry, _> =
            toml::from_str("name='a'\npath='p'\nunpinned=true\nsha265='x'");
        assert!(r.unwrap_err().to_string().contains("sha265"));
    }
}
