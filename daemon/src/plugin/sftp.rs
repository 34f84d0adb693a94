//! The `sftp` import (contract 0.3.0): files on SSH servers, reached by
//! billd on a plugin's behalf.
//!
//! Clearinghouses take 837 batches and hand back 999, 277CA and 835 files
//! through SFTP folders. The credentials for those folders are the
//! practice's, so they stay in billd, like signing keys: the plugin's
//! manifest declares the server names it uses (`[sftp.NAME]`), the practice
//! configures each one on its `[[plugin]]` table (host, port, user, the
//! pinned host key, a password or private key by reference, a timeout and a
//! size cap), and the plugin only ever names the server.
//!
//! ```toml
//! [plugin.sftp.clearinghouse]
//! host = "sftp.clearinghouse.example"
//! port = 22
//! user = "practice-1234"
//! host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA…"
//! private_key = "file:/etc/billd/clearinghouse-key"   # or password = "env:…"
//! timeout_secs = 20
//! max_file_bytes = 67108864
//! ```
//!
//! billd connects (russh, pure Rust, crypto over ring), compares the
//! server's host key with the pin and refuses anything else (an unknown or
//! changed key is [`SftpFailure::HostKeyMismatch`], never "connect anyway"),
//! authenticates, and speaks SFTP v3 (russh-sftp's raw session, so that a
//! put can finish with OpenSSH's atomic `posix-rename`). Connecting and each
//! operation are bounded by the server's timeout and by what is left of the
//! call; `get` and `put` by the server's size cap. One connection per
//! server is kept for the length of a call and dropped with the call's
//! state (or at its first failure). Every operation, allowed or refused, is
//! audited ([`SftpAuditRecord`]: server, operation, path, bytes, outcome;
//! never file contents).

use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The default timeout for connecting and for each operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The default size cap of one file moved by `get` or `put`: 64 MiB, above
/// the largest 835 or 837 batch a practice sends or receives, and within the
/// default transfer cap of a call.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

/// The bytes one SFTP read or write request moves (OpenSSH serves up to
/// 256 KiB; 32 KiB is what every server accepts).
const CHUNK: u32 = 32 << 10;

/// An SFTP server as the practice configures it on a `[[plugin]]` entry,
/// under the name the plugin's manifest declares. Credentials are
/// references (`env:NAME` or `file:PATH`), resolved when the plugin loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpServerRef {
    /// The server's host name or address.
    pub host: String,
    /// Its SSH port (default 22).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The account to log in as.
    pub user: String,
    /// The server's host key, pinned: an OpenSSH public key line, e.g.
    /// `ssh-ed25519 AAAA… comment` (the comment is ignored).
    pub host_key: String,
    /// The password, by reference.
    #[serde(default)]
    pub password: Option<String>,
    /// An OpenSSH private key (ed25519 or ECDSA, not passphrase-protected),
    /// by reference.
    #[serde(default)]
    pub private_key: Option<String>,
    /// Seconds allowed for connecting and for each operation (default 20,
    /// at most 600; also bounded by what is left of the call).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// The largest file `get` reads or `put` writes, in bytes (default
    /// 64 MiB).
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
}

fn default_port() -> u16 {
    22
}

/// How billd logs in to a server. `Debug` never shows the secret.
#[derive(Clone)]
pub enum SftpCredential {
    /// A password.
    Password(SecretString),
    /// A private key.
    PrivateKey(Arc<PrivateKey>),
}

impl fmt::Debug for SftpCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SftpCredential::Password(_) => f.write_str("Password(..)"),
            SftpCredential::PrivateKey(k) => write!(f, "PrivateKey({})", k.algorithm()),
        }
    }
}

/// A configured server with its credential resolved and its host key
/// parsed, ready to connect to.
#[derive(Debug, Clone)]
pub struct SftpServer {
    /// The host name or address.
    pub host: String,
    /// The SSH port.
    pub port: u16,
    /// The account.
    pub user: String,
    /// The pinned host key.
    pub host_key: PublicKey,
    /// How to log in.
    pub credential: SftpCredential,
    /// The timeout for connecting and for each operation.
    pub timeout: Duration,
    /// The size cap of one file.
    pub max_file_bytes: u64,
}

/// Why a server's configuration cannot be used: the field (relative to the
/// server's table) and the reason. Never repeats a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SftpConfigError {
    /// The field, e.g. `host_key` or `private_key`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// Parses a pinned host key: an OpenSSH public key line
/// (`ssh-ed25519 AAAA… [comment]`).
pub fn parse_host_key(line: &str) -> Result<PublicKey, String> {
    PublicKey::from_openssh(line.trim()).map_err(|e| {
        format!("not an OpenSSH public key line (\"ssh-ed25519 AAAA…\" as in known_hosts or a .pub file): {e}")
    })
}

impl SftpServerRef {
    /// Checks what can be checked without resolving secrets; each problem
    /// names its field.
    pub fn validate(&self) -> Vec<SftpConfigError> {
        let mut out = Vec::new();
        let mut p = |field, reason: &str| {
            out.push(SftpConfigError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.host.trim().is_empty() {
            p("host", "must not be empty");
        }
        if self.port == 0 {
            p("port", "must be between 1 and 65535");
        }
        if self.user.trim().is_empty() {
            p("user", "must not be empty");
        }
        if let Err(e) = parse_host_key(&self.host_key) {
            out.push(SftpConfigError {
                field: "host_key",
                reason: e,
            });
        }
        let mut p = |field, reason: &str| {
            out.push(SftpConfigError {
                field,
                reason: reason.to_string(),
            })
        };
        match (&self.password, &self.private_key) {
            (None, None) => p(
                "password",
                "give `password` or `private_key` (by reference)",
            ),
            (Some(_), Some(_)) => p("private_key", "give `password` or `private_key`, not both"),
            _ => {}
        }
        for (field, r) in [
            ("password", &self.password),
            ("private_key", &self.private_key),
        ] {
            if let Some(r) = r
                && !(r.starts_with("env:") || r.starts_with("file:"))
            {
                // The value is not repeated: it may be the secret itself.
                p(field, "by reference only: \"env:NAME\" or \"file:PATH\"");
            }
        }
        if matches!(self.timeout_secs, Some(0) | Some(601..)) {
            p("timeout_secs", "must be between 1 and 600");
        }
        if self.max_file_bytes == Some(0) {
            p("max_file_bytes", "must be at least 1");
        }
        out
    }

    /// Resolves the credential through `resolve` (which must not put the
    /// value in its error) and parses the keys.
    pub fn resolve(
        &self,
        resolve: &dyn Fn(&str) -> Result<SecretString, String>,
    ) -> Result<SftpServer, SftpConfigError> {
        if let Some(first) = self.validate().into_iter().next() {
            return Err(first);
        }
        let err = |field, reason: String| SftpConfigError { field, reason };
        let host_key = parse_host_key(&self.host_key).map_err(|e| err("host_key", e))?;
        let credential = match (&self.password, &self.private_key) {
            (Some(r), None) => {
                SftpCredential::Password(resolve(r).map_err(|e| err("password", e))?)
            }
            (None, Some(r)) => {
                let text = resolve(r).map_err(|e| err("private_key", e))?;
                let key =
                    russh::keys::decode_secret_key(text.expose_secret(), None).map_err(|_| {
                        err(
                            "private_key",
                            "not an unencrypted OpenSSH private key (ed25519 or ECDSA)".into(),
                        )
                    })?;
                if key.algorithm().is_rsa() {
                    return Err(err(
                        "private_key",
                        "RSA client keys are not supported; use an ed25519 or ECDSA key".into(),
                    ));
                }
                SftpCredential::PrivateKey(Arc::new(key))
            }
            _ => unreachable!("validate() requires exactly one credential"),
        };
        Ok(SftpServer {
            host: self.host.trim().to_string(),
            port: self.port,
            user: self.user.clone(),
            host_key,
            credential,
            timeout: self
                .timeout_secs
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            max_file_bytes: self.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
        })
    }
}

/// Why an SFTP operation did not happen; each maps onto the contract's
/// `sftp-error` case of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SftpFailure {
    /// The server is not declared by the manifest and configured by the
    /// practice. Not retryable.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The server's host key is not the pinned one. Not retryable.
    #[error("host key mismatch: {0}")]
    HostKeyMismatch(String),
    /// The server refused the credentials. Not retryable.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// No such file or directory.
    #[error("not found: {0}")]
    NotFound(String),
    /// Over the size cap.
    #[error("too large: {0}")]
    TooLarge(String),
    /// No answer in time. Retryable.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Anything else.
    #[error("{0}")]
    Io(String),
}

impl SftpFailure {
    /// The outcome's name in the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            SftpFailure::NotAllowed(_) => "not-allowed",
            SftpFailure::HostKeyMismatch(_) => "host-key-mismatch",
            SftpFailure::Auth(_) => "auth",
            SftpFailure::NotFound(_) => "not-found",
            SftpFailure::TooLarge(_) => "too-large",
            SftpFailure::Timeout(_) => "timeout",
            SftpFailure::Io(_) => "io",
        }
    }
}

/// One audited SFTP operation. Holds no file contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpAuditRecord {
    /// The plugin that asked.
    pub plugin: String,
    /// When the operation started.
    pub at: SystemTime,
    /// The server name the plugin gave.
    pub server: String,
    /// `list`, `get`, `put`, `rename` or `remove`.
    pub op: String,
    /// The path (for `rename`, `from -> to`), cut to 512 bytes.
    pub path: String,
    /// Bytes moved (read by `get`, written by `put`; 0 otherwise).
    pub bytes: u64,
    /// `ok`, or the failure's kind (`not-allowed`, `host-key-mismatch`, …);
    /// `suppressed` for the closing count of a call whose operations the
    /// audit rate limit did not record one by one.
    pub outcome: String,
    /// Operations by this plugin before this one that the audit rate limit
    /// (shared with its HTTP requests) counted but did not record.
    #[serde(default)]
    pub suppressed: u64,
}

/// Writes one SFTP audit record as a `tracing` event with target
/// `billd::audit` (the same target as the HTTP audit).
pub fn trace_audit(r: &SftpAuditRecord) {
    tracing::info!(
        target: "billd::audit",
        plugin = %r.plugin,
        server = %r.server,
        op = %r.op,
        path = %r.path,
        bytes = r.bytes,
        outcome = %r.outcome,
        suppressed = r.suppressed,
        "plugin sftp"
    );
}

/// One operation a plugin asked for.
#[derive(Debug)]
pub(crate) enum SftpOp {
    /// List a directory.
    List { dir: String },
    /// Read a file.
    Get { path: String },
    /// Write a file (temporary name, then rename).
    Put { path: String, data: Vec<u8> },
    /// Rename.
    Rename { from: String, to: String },
    /// Delete a file.
    Remove { path: String },
}

impl SftpOp {
    fn name(&self) -> &'static str {
        match self {
            SftpOp::List { .. } => "list",
            SftpOp::Get { .. } => "get",
            SftpOp::Put { .. } => "put",
            SftpOp::Rename { .. } => "rename",
            SftpOp::Remove { .. } => "remove",
        }
    }

    fn path(&self) -> String {
        let p = match self {
            SftpOp::List { dir } => dir.clone(),
            SftpOp::Get { path } | SftpOp::Put { path, .. } | SftpOp::Remove { path } => {
                path.clone()
            }
            SftpOp::Rename { from, to } => format!("{from} -> {to}"),
        };
        match super::limits::cut_at(&p, 512) {
            (kept, 0) => kept.to_string(),
            (kept, cut) => format!("{kept}[cut {cut} bytes]"),
        }
    }
}

/// One directory entry, host-side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpEntry {
    /// The name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time in seconds since the epoch.
    pub mtime: Option<u32>,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// What an operation gave back.
#[derive(Debug)]
pub(crate) enum SftpOutput {
    /// A listing.
    Entries(Vec<SftpEntry>),
    /// A file's content.
    Bytes(Vec<u8>),
    /// Done.
    Done,
}

/// The connections of one call, by server name.
#[derive(Default)]
pub(crate) struct SftpConnections {
    open: BTreeMap<String, Connection>,
}

/// Performs one operation for `plugin` on the server it named, within the
/// call's deadline, and audits it (allowed or not) when `admit` lets it:
/// `admit` answers `Some(count of operations suppressed before)` to record,
/// `None` when the audit rate limit counts this one instead.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_audited(
    plugin: &str,
    servers: &BTreeMap<String, SftpServer>,
    audit: &dyn super::AuditSink,
    admit: impl FnOnce() -> Option<u64>,
    conns: &mut SftpConnections,
    call_deadline: Instant,
    server: String,
    op: SftpOp,
) -> Result<SftpOutput, SftpFailure> {
    let sent = match &op {
        SftpOp::Put { data, .. } => data.len() as u64,
        _ => 0,
    };
    let mut rec = SftpAuditRecord {
        plugin: plugin.to_string(),
        at: SystemTime::now(),
        server: server.clone(),
        op: op.name().to_string(),
        path: op.path(),
        bytes: 0,
        outcome: String::new(),
        suppressed: 0,
    };
    let result = run(servers, conns, call_deadline, &server, op).await;
    match &result {
        Ok(SftpOutput::Bytes(b)) => rec.bytes = b.len() as u64,
        Ok(_) => rec.bytes = sent,
        Err(SftpFailure::NotAllowed(_)) => {
            tracing::warn!(plugin = %plugin, server = %server, "plugin asked for an SFTP server it is not allowed");
        }
        Err(e) => {
            tracing::debug!(plugin = %plugin, server = %server, error = %e, "plugin sftp operation failed");
        }
    }
    rec.outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.kind().to_string(),
    };
    if let Some(before) = admit() {
        rec.suppressed = before;
        audit.record_sftp(&rec);
    }
    result
}

async fn run(
    servers: &BTreeMap<String, SftpServer>,
    conns: &mut SftpConnections,
    call_deadline: Instant,
    server: &str,
    op: SftpOp,
) -> Result<SftpOutput, SftpFailure> {
    let Some(cfg) = servers.get(server) else {
        return Err(SftpFailure::NotAllowed(format!(
            "no SFTP server {server:?} is both declared by the plugin's manifest and configured by the practice"
        )));
    };
    if let SftpOp::Put { data, .. } = &op
        && data.len() as u64 > cfg.max_file_bytes
    {
        return Err(SftpFailure::TooLarge(format!(
            "{} bytes is over the server's cap of {} bytes",
            data.len(),
            cfg.max_file_bytes
        )));
    }
    let budget = |cfg: &SftpServer| {
        cfg.timeout
            .min(call_deadline.saturating_duration_since(Instant::now()))
    };
    if !conns.open.contains_key(server) {
        let wait = budget(cfg);
        let conn = tokio::time::timeout(wait, Connection::open(cfg))
            .await
            .map_err(|_| {
                SftpFailure::Timeout(format!(
                    "connecting to {}:{} took over {wait:?}",
                    cfg.host, cfg.port
                ))
            })??;
        conns.open.insert(server.to_string(), conn);
    }
    let Some(conn) = conns.open.get_mut(server) else {
        return Err(SftpFailure::Io("connection lost".into()));
    };
    let wait = budget(cfg);
    let result = match tokio::time::timeout(wait, conn.perform(cfg, op)).await {
        Ok(r) => r,
        Err(_) => Err(SftpFailure::Timeout(format!(
            "no answer from {}:{} within {wait:?}",
            cfg.host, cfg.port
        ))),
    };
    if matches!(
        result,
        Err(SftpFailure::Timeout(_)) | Err(SftpFailure::Io(_))
    ) {
        // The session may be broken; the next operation reconnects.
        conns.open.remove(server);
    }
    result
}

/// Checks the server's host key against the pin.
struct PinnedKey {
    pinned: PublicKey,
    /// What the server offered, when it was not the pin.
    offered: Arc<OnceLock<String>>,
}

impl client::Handler for PinnedKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match offered {
            PublicKeyOrCertificate::PublicKey { key, .. }
                if key.key_data() == self.pinned.key_data() =>
            {
                Ok(true)
            }
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                let _ = self.offered.set(format!(
                    "the server offered {} {}, but the pinned host key is {} {}",
                    key.algorithm(),
                    key.fingerprint(HashAlg::Sha256),
                    self.pinned.algorithm(),
                    self.pinned.fingerprint(HashAlg::Sha256)
                ));
                Ok(false)
            }
            PublicKeyOrCertificate::Certificate(_) => {
                let _ = self.offered.set(
                    "the server offered a host certificate; billd accepts only the pinned host key"
                        .to_string(),
                );
                Ok(false)
            }
        }
    }
}

/// An authenticated SSH connection with its SFTP session.
struct Connection {
    // Kept so the SSH connection lives as long as the SFTP session.
    _ssh: client::Handle<PinnedKey>,
    sftp: RawSftpSession,
    posix_rename: bool,
}

fn raw_error(what: &str, e: RawError) -> SftpFailure {
    match e {
        RawError::Status(s) => match s.status_code {
            StatusCode::NoSuchFile => SftpFailure::NotFound(format!("{what}: {}", s.error_message)),
            StatusCode::PermissionDenied => {
                SftpFailure::Io(format!("{what}: permission denied: {}", s.error_message))
            }
            code => SftpFailure::Io(format!("{what}: {code}: {}", s.error_message)),
        },
        RawError::Timeout => SftpFailure::Timeout(format!("{what}: no answer in time")),
        other => SftpFailure::Io(format!("{what}: {other}")),
    }
}

fn is_eof(e: &RawError) -> bool {
    matches!(e, RawError::Status(s) if s.status_code == StatusCode::Eof)
}

impl Connection {
    async fn open(cfg: &SftpServer) -> Result<Connection, SftpFailure> {
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(cfg.timeout),
            ..client::Config::default()
        });
        let offered = Arc::new(OnceLock::new());
        let handler = PinnedKey {
            pinned: cfg.host_key.clone(),
            offered: offered.clone(),
        };
        let addr = (cfg.host.as_str(), cfg.port);
        let mut ssh = match client::connect(config, addr, handler).await {
            Ok(h) => h,
            Err(e) => {
                if let Some(why) = offered.get() {
                    return Err(SftpFailure::HostKeyMismatch(format!(
                        "{}:{}: {why}",
                        cfg.host, cfg.port
                    )));
                }
                return Err(SftpFailure::Io(format!(
                    "connecting to {}:{}: {e}",
                    cfg.host, cfg.port
                )));
            }
        };
        let auth = match &cfg.credential {
            SftpCredential::Password(p) => {
                ssh.authenticate_password(cfg.user.clone(), p.expose_secret())
                    .await
            }
            SftpCredential::PrivateKey(k) => {
                ssh.authenticate_publickey(
                    cfg.user.clone(),
                    PrivateKeyWithHashAlg::new(k.clone(), None),
                )
                .await
            }
        }
        .map_err(|e| SftpFailure::Io(format!("authenticating: {e}")))?;
        if !auth.success() {
            return Err(SftpFailure::Auth(format!(
                "{}:{} refused the configured credentials for user {:?}",
                cfg.host, cfg.port, cfg.user
            )));
        }
        let channel = ssh
            .channel_open_session()
            .await
            .map_err(|e| SftpFailure::Io(format!("opening a session channel: {e}")))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| SftpFailure::Io(format!("starting the sftp subsystem: {e}")))?;
        let sftp = RawSftpSession::new_with_config(
            channel.into_stream(),
            russh_sftp::client::Config {
                request_timeout_secs: cfg.timeout.as_secs().max(1),
                ..russh_sftp::client::Config::default()
            },
        );
        let version = sftp.init().await.map_err(|e| raw_error("sftp init", e))?;
        let posix_rename = version
            .extensions
            .get("posix-rename@openssh.com")
            .is_some_and(|v| v == "1");
        Ok(Connection {
            _ssh: ssh,
            sftp,
            posix_rename,
        })
    }

    async fn perform(&mut self, cfg: &SftpServer, op: SftpOp) -> Result<SftpOutput, SftpFailure> {
        match op {
            SftpOp::List { dir } => self.list(&dir).await.map(SftpOutput::Entries),
            SftpOp::Get { path } => self
                .get(&path, cfg.max_file_bytes)
                .await
                .map(SftpOutput::Bytes),
            SftpOp::Put { path, data } => self.put(&path, data).await.map(|()| SftpOutput::Done),
            SftpOp::Rename { from, to } => self.rename(&from, &to).await.map(|()| SftpOutput::Done),
            SftpOp::Remove { path } => self
                .sftp
                .remove(path.as_str())
                .await
                .map(|_| SftpOutput::Done)
                .map_err(|e| raw_error(&path, e)),
        }
    }

    async fn list(&mut self, dir: &str) -> Result<Vec<SftpEntry>, SftpFailure> {
        let handle = self
            .sftp
            .opendir(dir)
            .await
            .map_err(|e| raw_error(dir, e))?
            .handle;
        let mut out = Vec::new();
        let result = loop {
            match self.sftp.readdir(handle.as_str()).await {
                Ok(name) => {
                    for f in name.files {
                        if f.filename == "." || f.filename == ".." {
                            continue;
                        }
                        out.push(SftpEntry {
                            is_dir: f.attrs.is_dir(),
                            size: f.attrs.size.unwrap_or(0),
                            mtime: f.attrs.mtime,
                            name: f.filename,
                        });
                    }
                }
                Err(e) if is_eof(&e) => break Ok(()),
                Err(e) => break Err(raw_error(dir, e)),
            }
        };
        let _ = self.sftp.close(handle).await;
        result.map(|()| {
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out
        })
    }

    async fn get(&mut self, path: &str, cap: u64) -> Result<Vec<u8>, SftpFailure> {
        let too_large = |n: u64| {
            SftpFailure::TooLarge(format!(
                "{path} is {n} bytes or more, over the server's cap of {cap} bytes"
            ))
        };
        let attrs = self
            .sftp
            .stat(path)
            .await
            .map_err(|e| raw_error(path, e))?
            .attrs;
        if attrs.is_dir() {
            return Err(SftpFailure::Io(format!("{path} is a directory")));
        }
        if let Some(size) = attrs.size
            && size > cap
        {
            return Err(too_large(size));
        }
        let handle = self
            .sftp
            .open(path, OpenFlags::READ, FileAttributes::default())
            .await
            .map_err(|e| raw_error(path, e))?
            .handle;
        let mut out = Vec::new();
        let result = loop {
            match self
                .sftp
                .read(handle.as_str(), out.len() as u64, CHUNK)
                .await
            {
                Ok(d) if d.data.is_empty() => break Ok(()),
                Ok(d) => {
                    out.extend_from_slice(&d.data);
                    // The file may have grown since the stat.
                    if out.len() as u64 > cap {
                        break Err(too_large(out.len() as u64));
                    }
                }
                Err(e) if is_eof(&e) => break Ok(()),
                Err(e) => break Err(raw_error(path, e)),
            }
        };
        let _ = self.sftp.close(handle).await;
        result.map(|()| out)
    }

    async fn put(&mut self, path: &str, data: Vec<u8>) -> Result<(), SftpFailure> {
        let tmp = temp_name(path);
        let written = self.write_file(&tmp, &data).await;
        let done = match written {
            Ok(()) => self.rename(&tmp, path).await,
            Err(e) => Err(e),
        };
        if done.is_err() {
            // Best effort: leave no partial file behind.
            let _ = self.sftp.remove(tmp.as_str()).await;
        }
        done
    }

    async fn write_file(&mut self, path: &str, data: &[u8]) -> Result<(), SftpFailure> {
        let handle = self
            .sftp
            .open(
                path,
                OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
                FileAttributes::default(),
            )
            .await
            .map_err(|e| raw_error(path, e))?
            .handle;
        let mut result = Ok(());
        for (i, chunk) in data.chunks(CHUNK as usize).enumerate() {
            let offset = i as u64 * u64::from(CHUNK);
            if let Err(e) = self
                .sftp
                .write(handle.as_str(), offset, chunk.to_vec())
                .await
            {
                result = Err(raw_error(path, e));
                break;
            }
        }
        let closed = self.sftp.close(handle).await;
        result?;
        closed.map(|_| ()).map_err(|e| raw_error(path, e))
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<(), SftpFailure> {
        let what = format!("{from} -> {to}");
        if self.posix_rename {
            let mut data = Vec::with_capacity(8 + from.len() + to.len());
            for s in [from, to] {
                data.extend_from_slice(&(s.len() as u32).to_be_bytes());
                data.extend_from_slice(s.as_bytes());
            }
            return match self
                .sftp
                .extended("posix-rename@openssh.com", data)
                .await
                .map_err(|e| raw_error(&what, e))?
            {
                russh_sftp::protocol::Packet::Status(s) if s.status_code == StatusCode::Ok => {
                    Ok(())
                }
                russh_sftp::protocol::Packet::Status(s) => {
                    Err(raw_error(&what, RawError::Status(s)))
                }
                _ => Err(SftpFailure::Io(format!("{what}: unexpected answer"))),
            };
        }
        self.sftp
            .rename(from, to)
            .await
            .map(|_| ())
            .map_err(|e| raw_error(&what, e))
    }
}

/// A temporary name beside `path`: hidden (a leading dot, which pickup
/// scripts skip) and unique, so two uploads never share one.
fn temp_name(path: &str) -> String {
    let (dir, file) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let tag: u64 = rand::random();
    format!("{dir}.{file}.{tag:016x}.billd-part")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIME/qqzquF6lU4DPj2kszuaALtyR1rbPDp5OIxn9XOPm test";

    fn server_ref() -> SftpServerRef {
        SftpServerRef {
            host: "127.0.0.1".into(),
            port: 2222,
            user: "billd".into(),
            host_key: ED25519_PUB.into(),
            password: Some("env:SFTP_PASSWORD".into()),
            private_key: None,
            timeout_secs: None,
            max_file_bytes: None,
        }
    }

    #[test]
    fn a_good_entry_resolves_with_defaults_and_hides_the_password() {
        let s = server_ref()
            .resolve(&|r| {
                assert_eq!(r, "env:SFTP_PASSWORD");
                Ok(SecretString::from("hunter2"))
            })
            .unwrap();
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.max_file_bytes, DEFAULT_MAX_FILE_BYTES);
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn problems_name_the_field_and_never_the_secret() {
        let mut r = server_ref();
        r.host_key = "ssh-ed25519 not-base64".into();
        r.password = Some("hunter2".into());
        r.timeout_secs = Some(0);
        let fields: Vec<_> = r.validate().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["host_key", "password", "timeout_secs"]);
        assert!(!format!("{:?}", r.validate()).contains("hunter2"));
        let mut r = server_ref();
        r.private_key = Some("file:/k".into());
        assert_eq!(r.validate()[0].field, "private_key");
        r.password = None;
        let e = r
            .resolve(&|_| Ok(SecretString::from("not a key, hunter2")))
            .unwrap_err();
        assert_eq!(e.field, "private_key");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn temporary_names_stay_in_the_directory_and_differ() {
        let a = temp_name("/in/batch-1.837");
        let b = temp_name("/in/batch-1.837");
        assert!(a.starts_with("/in/.batch-1.837."), "{a}");
        assert!(a.ends_with(".billd-part"));
        assert_ne!(a, b);
        assert!(temp_name("x").starts_with(".x."));
    }
}
