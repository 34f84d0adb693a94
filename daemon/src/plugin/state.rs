//! The per-call store data and the host imports a plugin may use.
//!
//! A fresh [`CallState`] is made for every call, so nothing one call leaves
//! behind (memory, WASI handles, output) can reach the next. WASI is linked
//! because Rust std guests import it, but its context grants nothing: no
//! directories, no environment variables, no arguments, no sockets, no name
//! lookups. Guest stdout and stderr go to in-memory pipes that are copied
//! into the log after the call.

use super::bindings::host_api::{self, HttpError, HttpRequest, HttpResponse, LogLevel};
use super::bindings::types::{self, Timestamp};
use super::config::CallLimits;
use super::http::{AuditSink, HttpBackend, HttpPolicy};
use super::kv::PluginKv;
use super::manifest::SettingValue;
use crate::clock::SharedClock;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
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
    pub http: HttpPolicy,
    pub backend: HttpBackend,
    pub audit: Arc<dyn AuditSink>,
    pub kv: PluginKv,
    pub clock: SharedClock,
    pub limits: CallLimits,
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
        }
    }

    /// Starts the clock for a new call on this state.
    pub fn begin_call(&mut self) {
        self.deadline = Instant::now() + self.shared.limits.call_timeout;
        self.deadline_hit = false;
        self.limiter.memory_hit = false;
        self.limiter.table_hit = false;
    }

    /// Copies what the guest printed into the log, tagged with the plugin.
    /// Returns stderr's text for error classification.
    pub fn drain_output(&self) -> String {
        let name = &self.shared.name;
        let out = self.stdout.contents();
        for line in String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
        {
            tracing::debug!(target: "billd::plugin::stdout", plugin = %name, "{line}");
        }
        let err = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
        let mut after_panic = false;
        for line in err.lines().filter(|l| !l.is_empty()) {
            if after_panic && !line.starts_with("note:") {
                // A panic message often formats the record being handled.
                tracing::debug!(target: "billd::plugin::stderr", plugin = %name, "[panic message withheld: it may hold patient data]");
                after_panic = false;
                continue;
            }
            after_panic = line.contains("panicked at ");
            tracing::debug!(target: "billd::plugin::stderr", plugin = %name, "{line}");
        }
        err
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

/// The longest log line kept from a plugin.
const MAX_LOG_LINE: usize = 4096;

impl host_api::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let plugin = self.shared.name.as_str();
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        match level {
            LogLevel::Trace => tracing::trace!(target: "billd::plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "billd::plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "billd::plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "billd::plugin", plugin, "{message}"),
            LogLevel::Error => tracing::error!(target: "billd::plugin", plugin, "{message}"),
        }
        Ok(())
    }

    async fn http_send(
        &mut self,
        request: HttpRequest,
    ) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        let s = &self.shared;
        Ok(super::http::send(
            &s.name,
            &s.http,
            &s.backend,
            s.audit.as_ref(),
            request,
            self.deadline,
        )
        .await)
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
        Ok(self.shared.kv.set(&key, &value))
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
