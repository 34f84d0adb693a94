//! `billd plugins …`: list, inspect, verify, call, sign and reload connector
//! plugins; and for their authors new, build and session.
//!
//! `call`, `inspect`, `sign`, `new`, `build` and `session` work on a path
//! and need no configuration file. `list`, `verify` and `reload` work on the practice's
//! configured plugins, which the caller passes in ([`ConfiguredPlugins`]).

use crate::app::author;
use crate::app::plugins::check;
use crate::config::secret::SecretRef;
use crate::plugin::harness::{Harness, HarnessBuilder};
use crate::plugin::{
    EngineSettings, HostOptions, PluginEngine, PluginEntry, PluginHost, World, dynamic, manifest,
    package_hashes, signing,
};
use anyhow::{Context, anyhow, bail};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The plugin verbs.
#[derive(clap::Subcommand, Debug)]
pub enum PluginsCommand {
    /// List the configured plugins: name, version, world, sha256, allowed
    /// hosts, signature status.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a package's manifest, world, imports and exports.
    Inspect {
        /// The package directory (or its plugin.toml or component).
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load every configured plugin as the daemon would (pins, signatures,
    /// settings, secrets, world) and report problems.
    Verify,
    /// Run one export of a package with JSON input and print the result as
    /// JSON; no daemon, no configuration needed.
    Call {
        /// The package directory (or its plugin.toml or component).
        #[arg(long)]
        plugin: PathBuf,
        /// The export's WIT name, e.g. `check-eligibility`.
        #[arg(long)]
        func: String,
        /// A JSON file with the parameters after the idempotency key.
        #[arg(long)]
        input: PathBuf,
        /// A directory of HTTP fixtures answering the plugin's requests
        /// (without it, requests go to the network, to the manifest's hosts
        /// only).
        #[arg(long, value_name = "DIR")]
        http_fixtures: Option<PathBuf>,
        /// Settings and secrets given on the command line.
        #[command(flatten)]
        given: Given,
        /// The idempotency key to pass (default: made up per call).
        #[arg(long)]
        idempotency_key: Option<String>,
        /// For `submit-claims`: a JSON file mapping claim ids to their
        /// earlier payers (lists of `prior-payer` records), which the
        /// plugin's `coordination.prior-payers` import answers with during
        /// the call, as the submission job's would for a secondary claim.
        #[arg(long, value_name = "FILE")]
        prior_payers: Option<PathBuf>,
    },
    /// Scaffold a standalone connector crate that builds anywhere: code for
    /// the world, plugin.toml, fixtures and a passing test.
    New {
        /// The plugin's name (lower-case letters, digits and `-`); the
        /// package, manifest and component names follow it.
        name: String,
        /// The connector kind.
        #[arg(long, value_enum)]
        world: WorldArg,
        /// Where to create the crate (as DIR/NAME).
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// The billd checkout's plugin-sdk directory the crate depends on
        /// [default: the one this billd was built from].
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Build a connector crate for wasm32-wasip2, lay out its package (the
    /// component named as plugin.toml says), check it as the host will and
    /// print the sha256 to pin.
    Build {
        /// The crate directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The package directory [default: DIR/dist/NAME].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Load a package once and serve calls as JSON lines on stdin and
    /// stdout, plugin state kept in memory for the session (what the
    /// `billd-plugin-test` crate drives from an author's `cargo test`).
    Session {
        /// The package directory (or its plugin.toml or component).
        #[arg(long)]
        plugin: PathBuf,
        /// A directory of HTTP fixtures (more can be added in the session);
        /// requests never go to the network.
        #[arg(long, value_name = "DIR")]
        http_fixtures: Option<PathBuf>,
        /// Settings and secrets given on the command line.
        #[command(flatten)]
        given: Given,
    },
    /// Sign a package with an ed25519 key (writes plugin.sig beside it).
    Sign {
        /// The package directory.
        path: PathBuf,
        /// The signing key file (base64 of 32 bytes).
        #[arg(long)]
        key: PathBuf,
        /// Create the key file first if it does not exist (mode 0600).
        #[arg(long)]
        generate_key: bool,
    },
    /// Verify every configured plugin, then ask the running daemon to swap
    /// them in (SIGHUP); calls in flight finish on the old versions.
    Reload {
        /// The daemon's process id.
        #[arg(long)]
        pid: Option<u32>,
    },
}

/// `--setting` and `--secret`, for the verbs that run a package.
#[derive(clap::Args, Debug)]
pub struct Given {
    /// A setting, `NAME=VALUE` (repeatable).
    #[arg(long = "setting", value_name = "K=V", value_parser = parse_pair)]
    pub settings: Vec<(String, String)>,
    /// A secret, `NAME=VALUE` (repeatable).
    #[arg(long = "secret", value_name = "K=V", value_parser = parse_pair)]
    pub secrets: Vec<(String, String)>,
    /// A signing key (contract 0.2.0 `signing`), `NAME=PEM_FILE` or
    /// `NAME=PEM_FILE#KID` (repeatable). billd reads the key; the plugin
    /// only gets what billd signs with it.
    #[arg(long = "signing-key", value_name = "K=FILE[#KID]", value_parser = parse_pair)]
    pub signing_keys: Vec<(String, String)>,
    /// An SFTP server the manifest declares (contract 0.3.0 `sftp`),
    /// `NAME=FILE`: FILE is TOML with the fields of a practice's
    /// `[plugin.sftp.NAME]` table (host, port, user, host_key, password or
    /// private_key as `env:`/`file:` references, timeout_secs,
    /// max_file_bytes). billd logs in; the plugin never sees the credential
    /// (repeatable).
    #[arg(long = "sftp", value_name = "NAME=FILE", value_parser = parse_pair)]
    pub sftp: Vec<(String, String)>,
}

/// The connector kinds, as `--world` spells them.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorldArg {
    /// `payer-connector`.
    Payer,
    /// `ehr-connector`.
    Ehr,
    /// `collections-connector`.
    Collections,
}

impl From<WorldArg> for World {
    fn from(w: WorldArg) -> World {
        match w {
            WorldArg::Payer => World::PayerConnector,
            WorldArg::Ehr => World::EhrConnector,
            WorldArg::Collections => World::CollectionsConnector,
        }
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

impl PluginsCommand {
    /// Whether the verb works on the configured plugins (and so needs a
    /// valid configuration file).
    pub fn needs_config(&self) -> bool {
        matches!(
            self,
            PluginsCommand::List { .. } | PluginsCommand::Verify | PluginsCommand::Reload { .. }
        )
    }
}

pub use crate::app::plugins::ConfiguredPlugins;

/// Runs a plugin verb. `configured` is required by `list`, `verify` and
/// `reload`.
pub fn run(
    cmd: &PluginsCommand,
    configured: Option<&ConfiguredPlugins>,
) -> anyhow::Result<ExitCode> {
    let need_config =
        || configured.ok_or_else(|| anyhow!("this verb needs the configuration file (--config)"));
    match cmd {
        PluginsCommand::List { json } => list(need_config()?, *json),
        PluginsCommand::Verify => verify(need_config()?).map(exit),
        PluginsCommand::Reload { pid } => {
            if !verify(need_config()?)? {
                eprintln!("billd: not reloading: fix the problems above first");
                return Ok(ExitCode::from(1));
            }
            match pid {
                Some(pid) => {
                    let status = std::process::Command::new("kill")
                        .args(["-HUP", &pid.to_string()])
                        .status()
                        .context("running kill -HUP")?;
                    if !status.success() {
                        bail!("could not signal process {pid}");
                    }
                    println!("asked billd (pid {pid}) to reload its plugins");
                }
                None => println!(
                    "all plugins verify; send SIGHUP to the running daemon (or pass --pid) to swap them in"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginsCommand::Inspect { path, json } => inspect(path, *json),
        PluginsCommand::Sign {
            path,
            key,
            generate_key,
        } => sign(path, key, *generate_key),
        PluginsCommand::New {
            name,
            world,
            dir,
            sdk,
        } => new(name, (*world).into(), dir, sdk.as_deref()),
        PluginsCommand::Build { dir, out, json } => build(dir, out.as_deref(), *json),
        PluginsCommand::Session {
            plugin,
            http_fixtures,
            given,
        } => {
            init_stderr_log();
            let mut b = Harness::builder(plugin);
            if let Some(d) = http_fixtures {
                b = b.fixtures_dir(d);
            }
            let harness = with_given(
                b,
                &given.settings,
                &given.secrets,
                &given.signing_keys,
                &given.sftp,
            )?
            .build()?;
            let rt = crate::cli::runtime().map_err(|e| anyhow!(e.message()))?;
            let stdin = std::io::stdin().lock();
            super::plugin_session::serve(&harness, &rt, stdin, std::io::stdout().lock())
                .context("plugin session")?;
            Ok(ExitCode::SUCCESS)
        }
        PluginsCommand::Call {
            plugin,
            func,
            input,
            http_fixtures,
            given,
            idempotency_key,
            prior_payers,
        } => {
            init_stderr_log();
            let out = call(&CallArgs {
                plugin,
                func,
                input,
                http_fixtures: http_fixtures.as_deref(),
                settings: &given.settings,
                secrets: &given.secrets,
                signing_keys: &given.signing_keys,
                sftp: &given.sftp,
                idempotency_key: idempotency_key.as_deref(),
                prior_payers: prior_payers.as_deref(),
                configured,
            })?;
            println!("{}", serde_json::to_string_pretty(&out.result)?);
            for a in &out.audit {
                eprintln!(
                    "http {} {}{} -> {} ({:?}, {} bytes out, {} bytes in)",
                    a.method,
                    a.host,
                    a.path,
                    a.status.map_or("-".to_string(), |s| s.to_string()),
                    a.outcome,
                    a.bytes_sent,
                    a.bytes_received
                );
            }
            for a in &out.sftp_audit {
                eprintln!(
                    "sftp {} {} {} -> {} ({} bytes)",
                    a.server, a.op, a.path, a.outcome, a.bytes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Adds the command line's settings, secrets, signing keys (`NAME`,
/// `PEM_FILE[#KID]`) and SFTP servers (`NAME`, `TOML_FILE`) to a harness;
/// an unreadable key or server file is an error naming the flag and the
/// file.
fn with_given(
    mut b: HarnessBuilder,
    settings: &[(String, String)],
    secrets: &[(String, String)],
    signing_keys: &[(String, String)],
    sftp: &[(String, String)],
) -> anyhow::Result<HarnessBuilder> {
    for (name, file) in sftp {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--sftp {name}: reading {file}"))?;
        let server: crate::plugin::sftp::SftpServerRef =
            toml::from_str(&text).map_err(|e| anyhow!("--sftp {name}: {file}: {}", e.message()))?;
        b = b.sftp_server(name, server);
    }
    for (k, v) in settings {
        b = b.setting(k, v);
    }
    for (k, v) in secrets {
        b = b.secret(k, v);
    }
    for (k, v) in signing_keys {
        let (file, kid) = match v.rsplit_once('#') {
            Some((f, kid)) if !kid.is_empty() => (f, Some(kid)),
            _ => (v.as_str(), None),
        };
        let pem = std::fs::read_to_string(file)
            .with_context(|| format!("--signing-key {k}: reading {file}"))?;
        b = b.signing_key(k, &pem, kid);
    }
    Ok(b)
}

/// The plugin's log lines and the host's warnings go to stderr, as the
/// daemon's would (filter with BILLD_LOG).
fn init_stderr_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BILLD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn list(cfg: &ConfiguredPlugins, json: bool) -> anyhow::Result<ExitCode> {
    let rows = check(cfg)?;
    let ok = rows.iter().all(|r| r.outcome.is_ok());
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| match &r.outcome {
                Ok(info) => serde_json::to_value(info).unwrap_or_default(),
                Err(e) => serde_json::json!({ "name": r.name, "error": e }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit(ok));
    }
    println!(
        "{:<24} {:<9} {:<22} {:<64} {:<28} SIGNATURE",
        "NAME", "VERSION", "WORLD", "SHA256", "ALLOWED HOSTS"
    );
    for r in &rows {
        match &r.outcome {
            Ok(i) => {
                let hosts = i
                    .allowed_hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                println!(
                    "{:<24} {:<9} {:<22} {:<64} {:<28} {}",
                    i.name,
                    i.version,
                    i.world.to_string(),
                    i.sha256,
                    if hosts.is_empty() {
                        "(none)".to_string()
                    } else {
                        hosts
                    },
                    i.signature
                );
            }
            Err(e) => println!("{:<24} ERROR: {e}", r.name),
        }
    }
    Ok(exit(ok))
}

/// Loads every configured plugin as the daemon would and prints one line
/// per plugin (`ok` or `FAIL` with the problem); returns whether all
/// verified.
pub fn verify(cfg: &ConfiguredPlugins) -> anyhow::Result<bool> {
    let rows = check(cfg)?;
    for r in &rows {
        match &r.outcome {
            Ok(i) => println!(
                "ok    {} {} ({}, sha256 {}, {})",
                i.name, i.version, i.world, i.sha256, i.signature
            ),
            Err(e) => println!("FAIL  {e}"),
        }
    }
    Ok(rows.iter().all(|r| r.outcome.is_ok()))
}

fn inspect(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let engine = PluginEngine::new(EngineSettings::small(), None)?;
    let i = dynamic::inspect(&engine, path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &i.manifest {
        Some(m) => {
            println!("name:         {}", m.name);
            println!("version:      {}", m.version);
            println!("world:        {}", m.world);
            println!("sdk-version:  {}", m.sdk_version);
            println!("description:  {}", m.description);
            println!(
                "component:    {} ({} bytes)",
                m.component_file(),
                i.size_bytes
            );
            println!("sha256:       {}", i.sha256);
            println!("allowed:      {}", m.allowed_hosts.join(", "));
            println!(
                "secrets:      {}",
                m.secrets.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            for (name, s) in &m.settings {
                println!(
                    "setting:      {name} ({:?}{})",
                    s.ty,
                    s.default
                        .as_ref()
                        .map(|d| format!(", default {d}"))
                        .unwrap_or_default()
                );
            }
        }
        None => {
            println!("manifest:     none (a bare component; no plugin.toml beside it)");
            println!(
                "world:        {}",
                i.world
                    .map_or("none it exports".to_string(), |w| w.to_string())
            );
            println!("component:    {} ({} bytes)", path.display(), i.size_bytes);
            println!("sha256:       {}", i.sha256);
        }
    }
    println!("imports:");
    for imp in &i.imports {
        println!("  {imp}");
    }
    println!("exports:");
    for (name, funcs) in &i.exports {
        println!("  {name}");
        for f in funcs {
            println!("    {f}");
        }
    }
    if !i.implements_world {
        match i.world {
            Some(w) => println!(
                "WARNING: the component does not export {}, which world {w} needs",
                w.export_interface()
            ),
            None => println!("WARNING: the component exports no billd connector interface"),
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn new(name: &str, world: World, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = author::new_plugin(&author::NewPlugin {
        name: name.to_string(),
        world,
        dir: dir.to_path_buf(),
        sdk: sdk.map(Path::to_path_buf),
    })?;
    println!("created {} ({world}) in {}", name, s.dir.display());
    for f in &s.files {
        println!("  {f}");
    }
    println!("next:");
    println!("  cd {}", s.dir.display());
    println!("  billd plugins build      # the package in dist/{name}, and its sha256");
    println!("  cargo test               # runs tests/connector.rs in billd's plugin host");
    println!(
        "  billd plugins call --plugin dist/{name} --func {} --input {} --http-fixtures fixtures/http --secret api-key=test-key",
        s.operation, s.input_file
    );
    Ok(ExitCode::SUCCESS)
}

fn build(dir: &Path, out: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let b = author::build_package(&author::BuildOptions {
        dir: dir.to_path_buf(),
        out: out.map(Path::to_path_buf),
    })?;
    if json {
        let v = serde_json::json!({
            "plugin": b.name,
            "version": b.version,
            "world": b.world.to_string(),
            "package": b.package,
            "component": b.component,
            "size_bytes": b.size_bytes,
            "sha256": b.sha256,
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("built {} {} ({})", b.name, b.version, b.world);
    println!("  package    {}", b.package.display());
    println!(
        "  component  {} ({} bytes)",
        b.component.display(),
        b.size_bytes
    );
    println!("  sha256     {}", b.sha256);
    println!("pin it in the practice's configuration:");
    println!("  [[plugin]]");
    println!("  name = \"{}\"", b.name);
    println!("  path = \"{}\"", b.package.display());
    println!("  sha256 = \"{}\"", b.sha256);
    println!(
        "  allowed_hosts = [{}]",
        b.allowed_hosts
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(path: &Path, key: &Path, generate: bool) -> anyhow::Result<ExitCode> {
    let (m, component, c_sha, m_sha) = package_hashes(path)?;
    let signing_key = if generate && !key.exists() {
        let k = signing::generate_signing_key(key)?;
        println!("created signing key {}", key.display());
        k
    } else {
        signing::read_signing_key(key)?
    };
    let sig = signing::sign(&signing_key, &c_sha, &m_sha);
    let dir = manifest::PackagePaths::locate(path);
    let out = dir.signature();
    std::fs::write(&out, toml::to_string(&sig)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("signed {} {} ({})", m.name, m.version, component.display());
    println!("  component sha256 {c_sha}");
    println!("  manifest  sha256 {m_sha}");
    println!("  wrote {}", out.display());
    println!(
        "trust it with:  [plugin_trust] keys = {{ my-key = \"{}\" }}",
        signing::public_key_text(&signing_key.verifying_key())
    );
    Ok(ExitCode::SUCCESS)
}

/// The arguments of `billd plugins call`.
#[derive(Debug)]
pub struct CallArgs<'a> {
    /// The package.
    pub plugin: &'a Path,
    /// The export's WIT name.
    pub func: &'a str,
    /// The input JSON file.
    pub input: &'a Path,
    /// HTTP fixtures directory.
    pub http_fixtures: Option<&'a Path>,
    /// Settings.
    pub settings: &'a [(String, String)],
    /// Secrets.
    pub secrets: &'a [(String, String)],
    /// Signing keys, `(NAME, PEM_FILE[#KID])`.
    pub signing_keys: &'a [(String, String)],
    /// SFTP servers, `(NAME, TOML_FILE)`.
    pub sftp: &'a [(String, String)],
    /// The idempotency key.
    pub idempotency_key: Option<&'a str>,
    /// Prior payers by claim id, as JSON, for a `submit-claims` call.
    pub prior_payers: Option<&'a Path>,
    /// The practice's configuration: when it lists this plugin, the call
    /// runs as the daemon would run it (that entry's pin, settings, secrets,
    /// allowed hosts and limits, and its real store).
    pub configured: Option<&'a ConfiguredPlugins>,
}

/// What a call produced.
#[derive(Debug)]
pub struct CallOutput {
    /// The result as JSON (`{"ok": …}` or `{"err": …}`).
    pub result: serde_json::Value,
    /// The HTTP attempts it made.
    pub audit: Vec<crate::plugin::HttpAuditRecord>,
    /// The SFTP operations it asked for.
    pub sftp_audit: Vec<crate::plugin::sftp::SftpAuditRecord>,
}

/// Runs `billd plugins call` and returns the result instead of printing it.
pub fn call(args: &CallArgs<'_>) -> anyhow::Result<CallOutput> {
    let text = std::fs::read_to_string(args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let input: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not JSON", args.input.display()))?;
    if let Some(cfg) = args.configured
        && let Some((index, entry)) = cfg.entry_for(args.plugin)?
    {
        return call_configured(args, cfg, index, entry, &input);
    }
    let mut b = Harness::builder(args.plugin);
    b = match args.http_fixtures {
        Some(d) => b.fixtures_dir(d),
        None => b.network(),
    };
    let harness =
        with_given(b, args.settings, args.secrets, args.signing_keys, args.sftp)?.build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let context = call_context(args, harness.plugin())?;
    let result = rt.block_on(async {
        match (args.idempotency_key, context) {
            (Some(k), context) => {
                let context = context.unwrap_or_default();
                dynamic::call_json_with(harness.plugin(), args.func, k, &input, context).await
            }
            (None, None) => harness.call_json(args.func, &input).await,
            (None, Some(context)) => {
                let key = format!("cli-{}", std::process::id());
                dynamic::call_json_with(harness.plugin(), args.func, &key, &input, context).await
            }
        }
    })?;
    Ok(CallOutput {
        result,
        audit: harness.audit(),
        sftp_audit: harness.sftp_audit(),
    })
}

/// The call's context from `--prior-payers` (none without it). Prior
/// payers are for `submit-claims` only: anything else is refused rather
/// than ignored.
fn call_context(
    args: &CallArgs<'_>,
    plugin: &crate::plugin::LoadedPlugin,
) -> anyhow::Result<Option<crate::plugin::CallContext>> {
    let Some(path) = args.prior_payers else {
        return Ok(None);
    };
    if args.func != "submit-claims" {
        anyhow::bail!(
            "--prior-payers is for submit-claims only (the coordination import answers during that call), not {}",
            args.func
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let context = dynamic::prior_payers_context(plugin, &json)
        .with_context(|| format!("{}: prior payers", path.display()))?;
    Ok(Some(context))
}

/// `plugins call` for a plugin the configuration lists: the daemon's host
/// options, the entry's spec, and the practice's store unless the daemon
/// holds it (then an in-memory one, said on stderr).
fn call_configured(
    args: &CallArgs<'_>,
    cfg: &ConfiguredPlugins,
    index: usize,
    entry: &PluginEntry,
    input: &serde_json::Value,
) -> anyhow::Result<CallOutput> {
    if let Some((name, _)) = args.sftp.first() {
        anyhow::bail!(
            "--sftp {name}: the configuration lists this plugin, so its [plugin.sftp.{name}] table applies (pass a package the configuration does not list to use --sftp)"
        );
    }
    let base = cfg.base_dir.clone();
    let resolve = move |r: &str| -> Result<SecretString, String> {
        SecretRef::parse(r)
            .and_then(|s| s.resolve(&base))
            .map_err(|e| e.to_string())
    };
    let mut spec = entry
        .to_spec(index, &cfg.base_dir, &resolve)
        .map_err(|p| anyhow!("{p}"))?;
    // The package given on the command line is the one run; the pin still
    // has to match it.
    spec.path = args.plugin.to_path_buf();
    for (k, v) in args.settings {
        spec.settings.insert(k.clone(), setting_value(v));
    }
    for (k, v) in args.secrets {
        spec.secrets
            .insert(k.clone(), SecretString::from(v.clone()));
    }
    let db = match &cfg.store {
        Some(store) => {
            match crate::store::Db::open_sled(&store.path, &store.key_file, store.cache_bytes) {
                Ok(db) => Some(db),
                Err(e) => {
                    eprintln!(
                        "billd: plugin state in memory for this call: the store at {} cannot be opened ({e}); is the daemon running?",
                        store.path.display()
                    );
                    None
                }
            }
        }
        None => None,
    };
    let mut opts = match &db {
        Some(db) => {
            let mut o = HostOptions::new(db.raw().clone())?;
            o.kv_key = Some(db.sealing_key());
            o
        }
        None => HostOptions::new(Arc::new(crate::store::MemStore::new()))?,
    };
    let audit = Arc::new(crate::plugin::MemoryAudit::new());
    opts.audit = audit.clone();
    opts.engine = cfg.engine.clone();
    opts.cache_dir = cfg.cache_dir.clone();
    opts.trust = cfg.trust.clone();
    if let Some(dir) = args.http_fixtures {
        opts.http = crate::plugin::HttpBackend::Fixtures(Arc::new(
            crate::plugin::http::FixtureSet::load_dir(dir)?,
        ));
    }
    let host = PluginHost::new(opts)?;
    let plugin = host.load(&spec)?;
    let key = args
        .idempotency_key
        .map(str::to_string)
        .unwrap_or_else(|| format!("cli-{}", std::process::id()));
    let context = call_context(args, &plugin)?.unwrap_or_default();
    let result = crate::cli::runtime()
        .map_err(|e| anyhow!(e.message()))?
        .block_on(dynamic::call_json_with(
            &plugin, args.func, &key, input, context,
        ))?;
    if let Some(db) = &db {
        db.flush()?;
    }
    Ok(CallOutput {
        result,
        audit: audit.records(),
        sftp_audit: audit.sftp_records(),
    })
}

/// A `--setting` value as TOML: an integer or boolean if it reads as one,
/// else text (the manifest's declared type decides at load).
fn setting_value(text: &str) -> toml::Value {
    if let Ok(i) = text.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = text.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::tests::{dist, inquiry_json};
    use crate::plugin::{PluginEntry, PluginTrust};

    #[test]
    fn call_runs_an_export_with_json_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = tempfile::tempdir().unwrap();
        let input = dir.path().join("inquiry.json");
        std::fs::write(&input, inquiry_json("W42").to_string()).unwrap();
        let out = call(&CallArgs {
            plugin: &dist("echo-payer"),
            func: "check-eligibility",
            input: &input,
            http_fixtures: Some(fixtures.path()),
            settings: &[("generation".into(), "7".into())],
            secrets: &[],
            signing_keys: &[],
            sftp: &[],
            idempotency_key: Some("cli-1"),
            prior_payers: None,
            configured: None,
        })
        .unwrap();
        assert_eq!(out.result["ok"]["plan-name"], "generation 7");
        assert_eq!(out.result["ok"]["payer-reference"], "echo-cli-1");

        let err = call(&CallArgs {
            plugin: &dist("echo-payer"),
            func: "check-eligibility",
            input: &input,
            http_fixtures: Some(fixtures.path()),
            settings: &[("generation".into(), "seven".into())],
            secrets: &[],
            signing_keys: &[],
            sftp: &[],
            idempotency_key: None,
            prior_payers: None,
            configured: None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("generation"), "{err}");

        // Prior payers are for submit-claims only: refused, not ignored.
        let prior = dir.path().join("prior.json");
        std::fs::write(&prior, "{}").unwrap();
        let err = call(&CallArgs {
            plugin: &dist("echo-payer"),
            func: "check-eligibility",
            input: &input,
            http_fixtures: Some(fixtures.path()),
            settings: &[],
            secrets: &[],
            signing_keys: &[],
            sftp: &[],
            idempotency_key: None,
            prior_payers: Some(&prior),
            configured: None,
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("for submit-claims only"),
            "{err:#}"
        );
    }

    #[test]
    fn call_takes_a_signing_key_file_with_its_kid_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = tempfile::tempdir().unwrap();
        let input = dir.path().join("window.json");
        std::fs::write(
            &input,
            r#"{"start":{"seconds":1800000000,"nanoseconds":0},"end":{"seconds":1800000300,"nanoseconds":0}}"#,
        )
        .unwrap();
        let pem =
            crate::plugin::tests::workspace_root().join("daemon/src/plugin/testdata/ec-p384.pem");
        let keys = [(
            "assertion".to_string(),
            format!("{}#cli-kid", pem.display()),
        )];
        let args = CallArgs {
            plugin: &dist("signer"),
            func: "appointments",
            input: &input,
            http_fixtures: Some(fixtures.path()),
            settings: &[],
            secrets: &[],
            signing_keys: &keys,
            sftp: &[],
            idempotency_key: Some("jti-cli"),
            prior_payers: None,
            configured: None,
        };
        let out = call(&args).unwrap();
        let token = out.result["ok"][0]["appointment-id"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).expect(token);
        assert_eq!(header.kid.as_deref(), Some("cli-kid"));
        let missing = [("assertion".to_string(), "/nonexistent/key.pem".to_string())];
        let err = call(&CallArgs {
            signing_keys: &missing,
            ..args
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("--signing-key assertion: reading /nonexistent/key.pem"),
            "{err:#}"
        );
    }

    #[test]
    fn sign_writes_a_signature_that_verify_accepts() {
        let pkg = tempfile::tempdir().unwrap();
        for f in ["plugin.toml", "echo_payer.wasm"] {
            std::fs::copy(dist("echo-payer").join(f), pkg.path().join(f)).unwrap();
        }
        let key = pkg.path().join("signing.key");
        assert_eq!(sign(pkg.path(), &key, true).unwrap(), ExitCode::SUCCESS);
        let public =
            signing::public_key_text(&signing::read_signing_key(&key).unwrap().verifying_key());
        let (_, _, sha, _) = package_hashes(pkg.path()).unwrap();
        let cfg = ConfiguredPlugins {
            entries: vec![PluginEntry {
                sha256: Some(sha),
                unpinned: false,
                ..PluginEntry::for_tests("echo-payer", pkg.path())
            }],
            trust: PluginTrust {
                require_signatures: true,
                keys: [("ours".to_string(), public)].into(),
            },
            base_dir: PathBuf::from("/"),
            cache_dir: None,
            store: None,
            engine: Default::default(),
        };
        assert!(verify(&cfg).unwrap());
        // Tamper with the manifest: verification now fails.
        let m = pkg.path().join("plugin.toml");
        let t = std::fs::read_to_string(&m)
            .unwrap()
            .replace("Test connector", "Changed");
        std::fs::write(&m, t).unwrap();
        assert!(!verify(&cfg).unwrap());
    }

    #[test]
    fn call_with_the_configuration_runs_as_the_daemon_would() {
        let root = tempfile::tempdir().unwrap();
        let store = crate::config::StoreConfig {
            path: root.path().join("store"),
            key_file: root.path().join("keys/store.key"),
            cache_bytes: 1 << 20,
        };
        crate::store::StoreKey::generate_to(&store.key_file).unwrap();
        let (_, _, sha, _) = package_hashes(&dist("echo-payer")).unwrap();
        let entry = |sha: String| PluginEntry {
            sha256: Some(sha),
            unpinned: false,
            settings: [("generation".to_string(), toml::Value::Integer(5))].into(),
            ..PluginEntry::for_tests("echo-payer", &dist("echo-payer"))
        };
        let mut cfg = ConfiguredPlugins {
            entries: vec![entry(sha)],
            base_dir: root.path().to_path_buf(),
            cache_dir: Some(store.path.join("plugin-cache")),
            store: Some(store.clone()),
            ..Default::default()
        };
        let input = root.path().join("in.json");
        let run = |cfg: &ConfiguredPlugins, func: &str, json: serde_json::Value| {
            std::fs::write(&input, json.to_string()).unwrap();
            call(&CallArgs {
                plugin: &dist("echo-payer"),
                func,
                input: &input,
                http_fixtures: None,
                settings: &[],
                secrets: &[],
                signing_keys: &[],
                sftp: &[],
                idempotency_key: Some("k"),
                prior_payers: None,
                configured: Some(cfg),
            })
        };
        let out = run(&cfg, "check-eligibility", inquiry_json("W1")).unwrap();
        assert_eq!(out.result["ok"]["plan-name"], "generation 5");
        // State lives in the practice's store, across processes' calls.
        for n in 1..=2 {
            let out = run(&cfg, "fetch-remittances", serde_json::Value::Null).unwrap();
            assert_eq!(out.result["ok"]["next"], format!("-{n}"));
        }
        let db =
            crate::store::Db::open_sled(&store.path, &store.key_file, store.cache_bytes).unwrap();
        assert!(
            db.raw()
                .get(crate::plugin::kv::COLLECTION, b"echo-payer/calls")
                .unwrap()
                .is_some()
        );
        drop(db);
        // The configured pin applies.
        cfg.entries = vec![entry("0".repeat(64))];
        let e = run(&cfg, "check-eligibility", inquiry_json("W1")).unwrap_err();
        assert!(e.to_string().contains("pins 0000"), "{e}");
    }
}
