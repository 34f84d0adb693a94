//! Test a billd connector plugin from `cargo test`.
//!
//! The component runs in billd's own plugin host — the same engine
//! settings, sandbox, allow-list and caps as the daemon — against scripted
//! HTTP answers, with the plugin's state in memory for the life of a
//! [`Harness`]. This crate does not link that host: it drives the installed
//! `billd` binary (`billd plugins session`, JSON lines over a pipe), so a
//! connector's tests build in seconds, need none of the daemon's
//! dependencies, and always run the host the practice runs. The binary is
//! found through [`Builder::billd`], else `$BILLD`, else `billd` on `PATH`.
//!
//! ```no_run
//! use billd_plugin_test::{Fixture, Harness};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), billd_plugin_test::Error> {
//! // Builds the connector (`billd plugins build`) and loads the package.
//! let h = Harness::for_crate(env!("CARGO_MANIFEST_DIR"))
//!     .fixtures_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/http"))
//!     .secret("api-key", "test-key")
//!     .start()?;
//! let out = h.call_ok("check-eligibility", &json!({ /* an inquiry */ }))?;
//! assert_eq!(out["status"], "active");
//! // Script the next answer and look at what the plugin sent.
//! h.add_fixture(
//!     Fixture::new("POST", "https://api.payer.example/coverage")
//!         .status(429)
//!         .header("retry-after", "30"),
//! )?;
//! let reqs = h.requests()?;
//! assert_eq!(reqs[0].header("idempotency-key").is_some(), true);
//! # Ok(()) }
//! ```

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The most stderr lines a harness keeps (the plugin's log and the host's
/// warnings); later lines are dropped.
pub const MAX_LOG_LINES: usize = 10_000;

/// The stderr line billd writes for a `sync` request, before its mark; the
/// harness keeps it out of [`Harness::logs`].
const SYNC_LINE: &str = "billd-session-sync";

/// How long [`Harness::logs`] waits for billd's stderr to catch up.
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// The stderr lines read so far and the last sync mark among them.
#[derive(Default)]
struct Logs {
    lines: Vec<String>,
    synced: u64,
}

/// Why a harness could not start or a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `billd` binary could not be run.
    #[error(
        "cannot run {program}: {reason} (install billd, or set BILLD=/path/to/billd, or call Builder::billd)"
    )]
    Billd {
        /// The program tried.
        program: String,
        /// What the OS said.
        reason: String,
    },
    /// `billd plugins build` failed; its output says why.
    #[error("billd plugins build {dir} failed:\n{output}")]
    Build {
        /// The crate directory.
        dir: String,
        /// What billd and cargo printed.
        output: String,
    },
    /// The package did not load (manifest, component, settings, fixtures).
    #[error("the plugin did not load:\n{0}")]
    Load(String),
    /// The host could not make the call (no such export, input that does
    /// not fit, a trap, the deadline, a limit).
    #[error("{0}")]
    Call(String),
    /// The plugin answered with a connector error where the test wanted a
    /// success ([`Harness::call_ok`]).
    #[error("the plugin answered with an error: {0}")]
    Connector(Value),
    /// The session broke (billd exited, or answered something unexpected).
    #[error("billd plugins session: {0}")]
    Session(String),
}

/// A scripted HTTP answer: the request it matches (method and full URL,
/// query included) and the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    method: String,
    url: String,
    status: u16,
    headers: BTreeMap<String, String>,
    body: FixtureBody,
}

#[derive(Debug, Clone, PartialEq)]
enum FixtureBody {
    None,
    Json(Value),
    Text(String),
}

impl Fixture {
    /// Answers `method url` with `200` and no body until told otherwise.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_string(),
            url: url.to_string(),
            status: 200,
            headers: BTreeMap::new(),
            body: FixtureBody::None,
        }
    }

    /// The status code.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_string(), value.to_string());
        self
    }

    /// A JSON body (sent with `content-type: application/json`).
    pub fn json(mut self, body: Value) -> Self {
        self.body = FixtureBody::Json(body);
        self
    }

    /// A text body.
    pub fn body(mut self, body: &str) -> Self {
        self.body = FixtureBody::Text(body.to_string());
        self
    }

    /// The fixture in billd's fixture-file format.
    pub fn to_json(&self) -> Value {
        let mut response = json!({ "status": self.status, "headers": self.headers });
        match &self.body {
            FixtureBody::None => {}
            FixtureBody::Json(v) => response["json"] = v.clone(),
            FixtureBody::Text(t) => response["body"] = Value::String(t.clone()),
        }
        json!({ "request": { "method": self.method, "url": self.url }, "response": response })
    }
}

/// A request the plugin sent (to the fixtures; nothing reaches a network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// The headers, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy for binary bodies).
    pub body: String,
}

impl Request {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

enum Target {
    /// A connector crate: built first.
    Crate(PathBuf),
    /// A built package (directory, `plugin.toml` or component).
    Package(PathBuf),
}

/// Starts a [`Harness`].
pub struct Builder {
    target: Target,
    billd: Option<PathBuf>,
    fixtures_dir: Option<PathBuf>,
    settings: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
    signing_keys: Vec<(String, String)>,
    sftp: Vec<(String, PathBuf)>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("billd", &self.billd)
            .field("fixtures_dir", &self.fixtures_dir)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The `billd` binary to run (default: `$BILLD`, else `billd` on `PATH`).
    pub fn billd(mut self, program: impl Into<PathBuf>) -> Self {
        self.billd = Some(program.into());
        self
    }

    /// Answers requests from every `*.json` fixture file in `dir`.
    pub fn fixtures_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fixtures_dir = Some(dir.into());
        self
    }

    /// Sets a setting (parsed as the manifest's declared type).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Supplies a secret.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.push((name.into(), value.into()));
        self
    }

    /// Configures a signing key (contract 0.2.0 `signing`): billd reads the
    /// PEM private key at `pem_file` and signs with it for the plugin,
    /// writing `kid` into each token's header; the plugin never sees it.
    pub fn signing_key(
        mut self,
        name: &str,
        pem_file: impl AsRef<Path>,
        kid: Option<&str>,
    ) -> Self {
        let mut v = pem_file.as_ref().display().to_string();
        if let Some(kid) = kid {
            v.push('#');
            v.push_str(kid);
        }
        self.signing_keys.push((name.into(), v));
        self
    }

    /// Configures an SFTP server the manifest declares (contract 0.3.0
    /// `sftp`) from a TOML file with the fields of a practice's
    /// `[plugin.sftp.NAME]` table (`host`, `port`, `user`, `host_key`,
    /// `password` or `private_key` as `env:`/`file:` references,
    /// `timeout_secs`, `max_file_bytes`): billd logs in with the pinned host
    /// key; the plugin never sees the credential.
    pub fn sftp_server(mut self, name: &str, server_toml: impl AsRef<Path>) -> Self {
        self.sftp
            .push((name.into(), server_toml.as_ref().to_path_buf()));
        self
    }

    fn program(&self) -> OsString {
        match &self.billd {
            Some(p) => p.clone().into_os_string(),
            None => std::env::var_os("BILLD").unwrap_or_else(|| "billd".into()),
        }
    }

    /// Builds the crate (for [`Harness::for_crate`]), loads the package and
    /// waits until billd says it is ready.
    pub fn start(self) -> Result<Harness, Error> {
        let program = self.program();
        let package = match &self.target {
            Target::Package(p) => p.clone(),
            Target::Crate(dir) => build(&program, dir)?,
        };
        let mut cmd = Command::new(&program);
        cmd.args(["plugins", "session", "--plugin"]).arg(&package);
        if let Some(d) = &self.fixtures_dir {
            cmd.arg("--http-fixtures").arg(d);
        }
        for (k, v) in &self.settings {
            cmd.arg("--setting").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.secrets {
            cmd.arg("--secret").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.signing_keys {
            cmd.arg("--signing-key").arg(format!("{k}={v}"));
        }
        for (name, file) in &self.sftp {
            let mut arg = OsString::from(format!("{name}="));
            arg.push(file.as_os_str());
            cmd.arg("--sftp").arg(arg);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Billd {
                program: program.to_string_lossy().into_owned(),
                reason: e.to_string(),
            })?;
        let logs = Arc::new((Mutex::new(Logs::default()), Condvar::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (lock, seen) = &*sink;
                let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
                let mark = line
                    .strip_prefix(SYNC_LINE)
                    .and_then(|m| m.trim().parse::<u64>().ok());
                match mark {
                    Some(m) => {
                        l.synced = l.synced.max(m);
                        seen.notify_all();
                    }
                    None if l.lines.len() < MAX_LOG_LINES => l.lines.push(line),
                    None => {}
                }
            }
            // The stream ended: nothing more will come, so wake any waiter.
            let (lock, seen) = &*sink;
            lock.lock().unwrap_or_else(|p| p.into_inner()).synced = u64::MAX;
            seen.notify_all();
        });
        let io = Io {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("stdout is piped")),
        };
        let mut harness = Harness {
            child,
            io: Mutex::new(io),
            logs,
            marks: std::sync::atomic::AtomicU64::new(0),
            stderr_reader: Some(reader),
            plugin: String::new(),
        };
        let ready = match harness.read_line() {
            Ok(v) => v,
            Err(_) => return Err(Error::Load(harness.finish_and_logs())),
        };
        harness.plugin = ready["ready"]["plugin"]
            .as_str()
            .ok_or_else(|| Error::Session(format!("expected the ready line, got {ready}")))?
            .to_string();
        Ok(harness)
    }
}

/// Runs `billd plugins build --json DIR` once per test process and crate,
/// and returns the package directory (tests running at once wait for the
/// one build).
fn build(program: &OsString, dir: &Path) -> Result<PathBuf, Error> {
    static BUILT: Mutex<BTreeMap<PathBuf, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(dir) {
        return Ok(p.clone());
    }
    let package = run_build(program, dir)?;
    built.insert(dir.to_path_buf(), package.clone());
    Ok(package)
}

fn run_build(program: &OsString, dir: &Path) -> Result<PathBuf, Error> {
    let out = Command::new(program)
        .args(["plugins", "build", "--json"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Billd {
            program: program.to_string_lossy().into_owned(),
            reason: e.to_string(),
        })?;
    let failed = |why: &str| Error::Build {
        dir: dir.display().to_string(),
        output: format!(
            "{why}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    if !out.status.success() {
        return Err(failed(""));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["package"].as_str().map(PathBuf::from))
        .ok_or_else(|| failed("no package in billd's output:\n"))
}

struct Io {
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// A running `billd plugins session` with one loaded plugin. Requests are
/// answered in order; the plugin's state lives as long as the harness.
pub struct Harness {
    child: Child,
    io: Mutex<Io>,
    logs: Arc<(Mutex<Logs>, Condvar)>,
    marks: std::sync::atomic::AtomicU64,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    plugin: String,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness for the connector crate at `dir` (usually
    /// `env!("CARGO_MANIFEST_DIR")`): [`Builder::start`] first runs
    /// `billd plugins build`, so the test runs the current source.
    pub fn for_crate(dir: impl Into<PathBuf>) -> Builder {
        Self::with_target(Target::Crate(dir.into()))
    }

    /// A harness for a built package (its directory, `plugin.toml` or
    /// component).
    pub fn for_package(path: impl Into<PathBuf>) -> Builder {
        Self::with_target(Target::Package(path.into()))
    }

    fn with_target(target: Target) -> Builder {
        Builder {
            target,
            billd: None,
            fixtures_dir: None,
            settings: Vec::new(),
            secrets: Vec::new(),
            signing_keys: Vec::new(),
            sftp: Vec::new(),
        }
    }

    /// The plugin's name (from its manifest).
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Calls an export by its WIT name with JSON input (the parameters
    /// after the idempotency key; an object by name when there are
    /// several) and returns the result: `{"ok": …}` or `{"err": …}`.
    pub fn call(&self, func: &str, input: &Value) -> Result<Value, Error> {
        self.request(json!({ "op": "call", "func": func, "input": input }))
    }

    /// Like [`Harness::call`] with the idempotency key given.
    pub fn call_with_key(&self, func: &str, key: &str, input: &Value) -> Result<Value, Error> {
        self.request(json!({ "op": "call", "func": func, "input": input, "idempotency-key": key }))
    }

    /// Calls `submit-claims` as the submission job calls it for secondary
    /// claims: during the call, the plugin's `coordination.prior-payers`
    /// import answers from `prior_payers`, an object mapping each
    /// `claim-id` to its list of `prior-payer` records (kebab-case names,
    /// as every input here). Returns the result like [`Harness::call`].
    pub fn submit_claims_with_prior_payers(
        &self,
        key: &str,
        claims: &Value,
        prior_payers: &Value,
    ) -> Result<Value, Error> {
        self.request(json!({
            "op": "call",
            "func": "submit-claims",
            "input": claims,
            "idempotency-key": key,
            "prior-payers": prior_payers,
        }))
    }

    /// Calls an export and returns its success value; a connector error
    /// becomes [`Error::Connector`].
    pub fn call_ok(&self, func: &str, input: &Value) -> Result<Value, Error> {
        let mut out = self.call(func, input)?;
        match out.get_mut("ok") {
            Some(v) => Ok(v.take()),
            None => Err(Error::Connector(out["err"].take())),
        }
    }

    /// Adds a scripted answer, matched before every earlier one.
    pub fn add_fixture(&self, fixture: Fixture) -> Result<(), Error> {
        self.request(json!({ "op": "fixture", "fixture": fixture.to_json() }))
            .map(drop)
    }

    /// Every request the plugin sent so far, in order.
    pub fn requests(&self) -> Result<Vec<Request>, Error> {
        let v = self.request(json!({ "op": "requests" }))?;
        let bad = || Error::Session(format!("unexpected requests answer: {v}"));
        v.as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|r| {
                Some(Request {
                    method: r["method"].as_str()?.to_string(),
                    url: r["url"].as_str()?.to_string(),
                    headers: r["headers"]
                        .as_array()?
                        .iter()
                        .map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
                        .collect::<Option<_>>()?,
                    body: r["body"].as_str()?.to_string(),
                })
            })
            .collect::<Option<_>>()
            .ok_or_else(bad)
    }

    /// The host's audit record of each HTTP attempt (method, host, path,
    /// status, outcome, byte counts; never bodies).
    pub fn audit(&self) -> Result<Vec<Value>, Error> {
        let v = self.request(json!({ "op": "audit" }))?;
        match v {
            Value::Array(a) => Ok(a),
            other => Err(Error::Session(format!("unexpected audit answer: {other}"))),
        }
    }

    /// The plugin's state: key to value (text, or `{"base64": …}` for bytes
    /// that are not UTF-8).
    pub fn state(&self) -> Result<BTreeMap<String, Value>, Error> {
        let v = self.request(json!({ "op": "state" }))?;
        match v {
            Value::Object(m) => Ok(m.into_iter().collect()),
            other => Err(Error::Session(format!("unexpected state answer: {other}"))),
        }
    }

    /// One state value parsed as JSON (what `state::set_json` wrote).
    pub fn state_json(&self, key: &str) -> Result<Option<Value>, Error> {
        Ok(self
            .state()?
            .get(key)
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str(t).ok()))
    }

    /// The lines billd wrote to stderr so far: the plugin's log lines and
    /// the host's warnings (check that nothing patient-identifying is
    /// logged). Every line billd wrote before this call is included: the
    /// harness asks billd to mark its stderr and waits for the mark.
    pub fn logs(&self) -> Vec<String> {
        let mark = 1 + self
            .marks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let asked = self.request(json!({ "op": "sync", "mark": mark })).is_ok();
        let (lock, seen) = &*self.logs;
        let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
        if asked {
            l = seen
                .wait_timeout_while(l, SYNC_WAIT, |l| l.synced < mark)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        l.lines.clone()
    }

    /// The lines read so far, without waiting for billd.
    fn logs_now(&self) -> Vec<String> {
        let (lock, _) = &*self.logs;
        lock.lock().unwrap_or_else(|p| p.into_inner()).lines.clone()
    }

    fn request(&self, req: Value) -> Result<Value, Error> {
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        let broken = |e: std::io::Error| {
            Error::Session(format!(
                "billd stopped answering ({e}); its stderr ends:\n{}",
                self.log_tail()
            ))
        };
        let stdin = io
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Session("closed".into()))?;
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .map_err(broken)?;
        let mut answer = read_json_line(&mut io.stdout).map_err(broken)?;
        if let Some(v) = answer.get_mut("ok") {
            return Ok(v.take());
        }
        match answer["error"].as_str() {
            Some(e) => Err(Error::Call(e.to_string())),
            None => Err(Error::Session(format!("unexpected answer: {answer}"))),
        }
    }

    fn read_line(&self) -> std::io::Result<Value> {
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        read_json_line(&mut io.stdout)
    }

    fn log_tail(&self) -> String {
        let logs = self.logs_now();
        logs[logs.len().saturating_sub(20)..].join("\n")
    }

    /// Ends the session and returns everything billd wrote to stderr.
    fn finish_and_logs(&mut self) -> String {
        self.finish();
        self.logs_now().join("\n")
    }

    fn finish(&mut self) {
        drop(
            self.io
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .stdin
                .take(),
        );
        let _ = self.child.wait();
        if let Some(r) = self.stderr_reader.take() {
            let _ = r.join();
        }
    }
}

fn read_json_line(r: &mut impl BufRead) -> std::io::Result<Value> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "billd exited",
        ));
    }
    serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_is_written_in_billds_fixture_format() {
        let f = Fixture::new("GET", "https://api.x.example/a?b=1")
            .status(429)
            .header("retry-after", "30")
            .json(json!({"slow": "down"}));
        assert_eq!(
            f.to_json(),
            json!({
                "request": {"method": "GET", "url": "https://api.x.example/a?b=1"},
                "response": {"status": 429, "headers": {"retry-after": "30"}, "json": {"slow": "down"}}
            })
        );
        let t = Fixture::new("POST", "https://api.x.example/").body("ok");
        assert_eq!(t.to_json()["response"]["body"], "ok");
        assert_eq!(t.to_json()["response"]["status"], 200);
        assert!(t.to_json()["response"].get("json").is_none());
    }

    #[test]
    fn request_headers_match_any_case_and_bodies_parse() {
        let r = Request {
            method: "POST".into(),
            url: "https://api.x.example/".into(),
            headers: vec![("Authorization".into(), "Bearer k".into())],
            body: "{\"a\": 1}".into(),
        };
        assert_eq!(r.header("authorization"), Some("Bearer k"));
        assert_eq!(r.header("x-other"), None);
        assert_eq!(r.json(), Some(json!({"a": 1})));
    }

    #[test]
    fn a_missing_billd_is_named_with_the_fix() {
        let e = Harness::for_package("/nonexistent")
            .billd("/nonexistent/billd")
            .start()
            .unwrap_err();
        assert!(matches!(e, Error::Billd { .. }), "{e}");
        assert!(e.to_string().contains("BILLD="), "{e}");
    }

    /// A stand-in for `billd plugins session` whose stderr lags behind its
    /// answers, as a busy machine makes a real one: each call's log line
    /// and each sync mark reach stderr 300 ms after the answer.
    const LAGGING_BILLD: &str = r#"#!/bin/sh
echo '{"ready":{"plugin":"lagging","world":"payer-connector"}}'
while read -r line; do
  case "$line" in
    *'"sync"'*)
      mark=$(echo "$line" | sed 's/.*"mark": *\([0-9]*\).*/\1/')
      (sleep 0.3; echo "billd-session-sync $mark" >&2) &
      echo "{\"ok\":$mark}" ;;
    *)
      (sleep 0.3; echo "plugin lagging: 1 accounts placed" >&2) &
      echo '{"ok":{"ok":[]}}' ;;
  esac
done
wait
"#;

    #[cfg(unix)]
    #[test]
    fn logs_waits_for_every_line_written_before_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("billd-plugin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("billd");
        std::fs::write(&program, LAGGING_BILLD).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let h = Harness::for_package(&dir).billd(&program).start().unwrap();
        h.call_ok("place-accounts", &json!({})).unwrap();
        let logs = h.logs();
        assert_eq!(logs, vec!["plugin lagging: 1 accounts placed".to_string()]);
        h.call_ok("place-accounts", &json!({})).unwrap();
        assert_eq!(h.logs().len(), 2, "the mark lines stay out of the logs");
        drop(h);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
