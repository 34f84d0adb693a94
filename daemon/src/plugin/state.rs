//! The per-call store data and the host imports a plugin may use.
//!
//! A fresh [`CallState`] is made for every call, so nothing one call leaves
//! behind (memory, WASI handles, output) can reach the next. WASI is linked
//! because Rust std guests import it, but its context grants nothing: no
//! directories, no environment variables, no arguments, no sockets, no name
//! lookups. Guest stdout and stderr go to in-memory pipes that are copied
//! into the log after the call.
//!
//! Log lines (from the `log` import and from guest output) are cut to a line
//! cap, counted against the per-call and per-minute limits, and handed to
//! the host's [`LogPump`] without waiting: the excess is dropped and
//! counted, and a slow log writer never holds up a call.

use super::bindings::host_api::{self, HttpError, HttpRequest, HttpResponse, LogLevel};
use super::bindings::sftp_api::{self, Entry, SftpError};
use super::bindings::signing_api::{self, SigningError};
use super::bindings::types::{self, Timestamp};
use super::config::CallLimits;
use super::coordination::CallContext;
use super::http::{AuditSink, HttpBackend, HttpPolicy};
use super::jwt::{JwtError, SigningKey};
use super::kv::PluginKv;
use super::limits::{Limit, PluginEvents, Reported};
use super::logpump::{LineLevel, LineSource, LogPump, PluginLogLine};
use super::manifest::SettingValue;
use super::sftp::{SftpConnections, SftpFailure, SftpOp, SftpOutput, SftpServer};
use crate::clock::SharedClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The most guest output (stdout and stderr each) kept per call.
const OUTPUT_CAP: usize = 64 << 10;

/// What every call of one loaded plugin shares: its resolved configuration
/// and the daemon's services.
pub(crate) struct PluginShared {
    pub name: String,
    pub settings: BTreeMap<String, SettingValue>,
    pub secrets: BTreeMap<String, SecretString>,
    pub signing_keys: BTreeMap<String, SigningKey>,
    /// SFTP servers both declared and configured, credentials resolved.
    pub sftp: BTreeMap<String, SftpServer>,
    pub http: HttpPolicy,
    pub backend: HttpBackend,
    pub audit: Arc<dyn AuditSink>,
    pub kv: PluginKv,
    pub clock: SharedClock,
    pub limits: CallLimits,
    pub events: Arc<dyn PluginEvents>,
    pub reported: Reported,
    pub log: Arc<LogPump>,
    pub log_rate: LogRate,
}

impl PluginShared {
    /// Reports a breach of `limit` (once per loaded plugin).
    pub fn report(&self, limit: Limit) {
        self.reported
            .report(self.events.as_ref(), &self.name, limit);
    }
}

/// The per-minute log limits of one plugin, across its calls.
pub(crate) struct LogRate {
    lines: DefaultDirectRateLimiter,
    bytes: DefaultDirectRateLimiter,
}

impl LogRate {
    pub fn new(limits: &CallLimits) -> Self {
        let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            lines: RateLimiter::direct(Quota::per_minute(nz(limits.max_log_lines_per_minute))),
            bytes: RateLimiter::direct(Quota::per_minute(nz(limits.max_log_bytes_per_minute))),
        }
    }

    fn admit(&self, len: usize) -> bool {
        let n = NonZeroU32::new(u32::try_from(len.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        // Lines first: a refused line takes no bytes.
        self.lines.check().is_ok() && matches!(self.bytes.check_n(n), Ok(Ok(())))
    }
}

/// Memory and table limits of one call, remembering whether one was hit so
/// the call's error can name it.
pub(crate) struct CallLimiter {
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
    pub memory_hit: bool,
    pub table_hit: bool,
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            self.table_hit = true;
            return Ok(false);
        }
        Ok(true)
    }
}

/// The data of one call's `Store`.
pub(crate) struct CallState {
    pub shared: Arc<PluginShared>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: CallLimiter,
    pub deadline: Instant,
    pub deadline_hit: bool,
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
    /// SFTP connections opened during this call (dropped with it).
    sftp: SftpConnections,
    /// What the caller handed this call for host imports to answer from
    /// (`coordination`); empty unless the call was given one.
    pub context: CallContext,
    log_lines: u32,
    log_bytes: u64,
    log_dropped: u64,
}

impl CallState {
    pub fn new(
        shared: Arc<PluginShared>,
        max_memory_bytes: usize,
        max_table_elements: usize,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        // Nothing is granted: no preopened directories, no environment, no
        // arguments, no network (the default socket check denies every
        // address; name lookups are off too). Stdin is empty.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let deadline = Instant::now() + shared.limits.call_timeout;
        Self {
            shared,
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter {
                max_memory_bytes,
                max_table_elements,
                memory_hit: false,
                table_hit: false,
            },
            deadline,
            deadline_hit: false,
            stdout,
            stderr,
            sftp: SftpConnections::default(),
            context: CallContext::default(),
            log_lines: 0,
            log_bytes: 0,
            log_dropped: 0,
        }
    }

    /// Starts the clock for a new call on this state.
    pub fn begin_call(&mut self) {
        self.deadline = Instant::now() + self.shared.limits.call_timeout;
        self.deadline_hit = false;
        self.limiter.memory_hit = false;
        self.limiter.table_hit = false;
        self.log_lines = 0;
        self.log_bytes = 0;
        self.log_dropped = 0;
    }

    /// Puts one line in the log if the limits let it through; never waits.
    pub fn emit(&mut self, level: LineLevel, source: LineSource, message: &str) {
        let message = cut_line(message);
        let limits = &self.shared.limits;
        let len = message.len() as u64;
        if self.log_lines >= limits.max_log_lines_per_call
            || self.log_bytes + len > limits.max_log_bytes_per_call
        {
            self.log_dropped += 1;
            self.shared.report(Limit::LogPerCall);
            return;
        }
        if !self.shared.log_rate.admit(message.len()) {
            self.log_dropped += 1;
            self.shared.report(Limit::LogPerMinute);
            return;
        }
        self.log_lines += 1;
        self.log_bytes += len;
        self.shared.log.offer(PluginLogLine {
            plugin: self.shared.name.as_str().into(),
            level,
            source,
            message,
        });
    }

    /// Copies what the guest printed into the log, tagged with the plugin,
    /// and notes how many lines the limits dropped. Returns stderr's text
    /// for error classification.
    pub fn drain_output(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.stdout.contents()).into_owned();
        for line in out.lines().filter(|l| !l.is_empty()) {
            self.emit(LineLevel::Debug, LineSource::Stdout, line);
        }
        let err = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
        let mut after_panic = false;
        for line in err.lines().filter(|l| !l.is_empty()) {
            if after_panic && !line.starts_with("note:") {
                // A panic message often formats the record being handled.
                self.emit(
                    LineLevel::Debug,
                    LineSource::Stderr,
                    "[panic message withheld: it may hold patient data]",
                );
                after_panic = false;
                continue;
            }
            after_panic = line.contains("panicked at ");
            self.emit(LineLevel::Debug, LineSource::Stderr, line);
        }
        if self.log_dropped > 0 {
            // One line per call, past the limits, so the drop is visible.
            self.shared.log.offer(PluginLogLine {
                plugin: self.shared.name.as_str().into(),
                level: LineLevel::Warn,
                source: LineSource::Log,
                message: format!(
                    "[billd: {} log lines of this call dropped by the plugin's log limits]",
                    self.log_dropped
                ),
            });
            self.log_dropped = 0;
        }
        err
    }
}

/// Cuts a line to [`MAX_LOG_LINE`] bytes at a character boundary.
fn cut_line(message: &str) -> String {
    match super::limits::cut_at(message, MAX_LOG_LINE) {
        (kept, 0) => kept.to_string(),
        (kept, _) => format!("{kept} [cut]"),
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for CallState {}

impl signing_api::Host for CallState {
    fn sign_jwt(
        &mut self,
        key: String,
        claims_json: String,
    ) -> wasmtime::Result<Result<String, SigningError>> {
        let plugin = &self.shared.name;
        let Some(k) = self.shared.signing_keys.get(&key) else {
            tracing::warn!(plugin = %plugin, key = %key, "plugin asked to sign with a key it was not given");
            return Ok(Err(SigningError::UnknownKey(format!(
                "no signing key {key:?} is configured for this plugin"
            ))));
        };
        let signed = k.sign(&claims_json);
        tracing::info!(
            target: "billd::audit",
            plugin = %plugin,
            key = %key,
            alg = k.algorithm(),
            ok = signed.is_ok(),
            "plugin JWT signature"
        );
        Ok(signed.map_err(|e| match e {
            JwtError::InvalidClaims(m) => SigningError::InvalidClaims(m),
            JwtError::KeyUnusable(m) => SigningError::KeyUnusable(m),
        }))
    }
}

impl CallState {
    async fn sftp_op(&mut self, server: String, op: SftpOp) -> Result<SftpOutput, SftpError> {
        let shared = self.shared.clone();
        super::sftp::run_audited(
            &shared.name,
            &shared.sftp,
            shared.audit.as_ref(),
            || shared.http.admit_sftp(),
            &mut self.sftp,
            self.deadline,
            server,
            op,
        )
        .await
        .map_err(|e| match e {
            SftpFailure::NotAllowed(m) => SftpError::NotAllowed(m),
            SftpFailure::HostKeyMismatch(m) => SftpError::HostKeyMismatch(m),
            SftpFailure::Auth(m) => SftpError::Auth(m),
            SftpFailure::NotFound(m) => SftpError::NotFound(m),
            SftpFailure::TooLarge(m) => SftpError::TooLarge(m),
            SftpFailure::Timeout(m) => SftpError::Timeout(m),
            SftpFailure::Io(m) => SftpError::Io(m),
        })
    }
}

/// Every operation goes through [`super::sftp`]: allow-list, pinned host
/// key, timeouts, caps and the audit record.
impl sftp_api::Host for CallState {
    async fn list(
        &mut self,
        server: String,
        dir: String,
    ) -> wasmtime::Result<Result<Vec<Entry>, SftpError>> {
        Ok(match self.sftp_op(server, SftpOp::List { dir }).await {
            Ok(SftpOutput::Entries(entries)) => Ok(entries
                .into_iter()
                .map(|e| Entry {
                    name: e.name,
                    size: e.size,
                    mtime: e.mtime.map(|s| Timestamp {
                        seconds: i64::from(s),
                        nanoseconds: 0,
                    }),
                    is_dir: e.is_dir,
                })
                .collect()),
            Ok(_) => Err(SftpError::Io("unexpected answer".into())),
            Err(e) => Err(e),
        })
    }

    async fn get(
        &mut self,
        server: String,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, SftpError>> {
        Ok(match self.sftp_op(server, SftpOp::Get { path }).await {
            Ok(SftpOutput::Bytes(b)) => Ok(b),
            Ok(_) => Err(SftpError::Io("unexpected answer".into())),
            Err(e) => Err(e),
        })
    }

    async fn put(
        &mut self,
        server: String,
        path: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), SftpError>> {
        Ok(self
            .sftp_op(server, SftpOp::Put { path, data })
            .await
            .map(|_| ()))
    }

    async fn rename(
        &mut self,
        server: String,
        from: String,
        to: String,
    ) -> wasmtime::Result<Result<(), SftpError>> {
        Ok(self
            .sftp_op(server, SftpOp::Rename { from, to })
            .await
            .map(|_| ()))
    }

    async fn remove(
        &mut self,
        server: String,
        path: String,
    ) -> wasmtime::Result<Result<(), SftpError>> {
        Ok(self
            .sftp_op(server, SftpOp::Remove { path })
            .await
            .map(|_| ()))
    }
}

/// The longest log line kept from a plugin.
const MAX_LOG_LINE: usize = 4096;

impl host_api::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            LogLevel::Trace => LineLevel::Trace,
            LogLevel::Debug => LineLevel::Debug,
            LogLevel::Info => LineLevel::Info,
            LogLevel::Warn => LineLevel::Warn,
            LogLevel::Error => LineLevel::Error,
        };
        self.emit(level, LineSource::Log, &message);
        Ok(())
    }

    async fn http_send(
        &mut self,
        request: HttpRequest,
    ) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        let s = &self.shared;
        Ok(super::http::send(s, request, self.deadline).await)
    }

    fn setting(&mut self, name: String) -> wasmtime::Result<Option<host_api::SettingValue>> {
        Ok(self.shared.settings.get(&name).map(|v| match v {
            SettingValue::Text(s) => host_api::SettingValue::Text(s.clone()),
            SettingValue::Integer(i) => host_api::SettingValue::Integer(*i),
            SettingValue::Boolean(b) => host_api::SettingValue::Boolean(*b),
        }))
    }

    fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .shared
            .secrets
            .get(&name)
            .map(|s| s.expose_secret().to_string()))
    }

    fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        match self.shared.kv.get(&key) {
            Ok(v) => Ok(v),
            Err(e) => {
                tracing::warn!(plugin = %self.shared.name, error = %e, "plugin state read failed");
                Ok(None)
            }
        }
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        Ok(self.shared.kv.set(&key, &value).map_err(|refusal| {
            if let Some(limit) = refusal.limit {
                self.shared.report(limit);
            }
            refusal.message
        }))
    }

    fn kv_delete(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(self.shared.kv.delete(&key))
    }

    fn now(&mut self) -> wasmtime::Result<Timestamp> {
        let t = self.shared.clock.now();
        Ok(Timestamp {
            seconds: t.timestamp(),
            nanoseconds: t.timestamp_subsec_nanos(),
        })
    }
}
