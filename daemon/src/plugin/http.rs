//! The `http-send` import: the only way a plugin reaches the network.
//!
//! billd performs every request itself (reqwest, rustls, no proxy from the
//! environment, no redirects: a redirect could lead off the allow-list), and
//! only to a scheme, host and port that both the plugin's manifest and the
//! practice's configuration allow. Each request is rate-limited per plugin,
//! bounded in time by the smaller of the HTTP timeout and what is left of
//! the call, and its response body is read only up to a cap. Every attempt,
//! sent or refused, is audited with method, host, path, status and byte
//! counts; never bodies, never query strings (they may carry member ids).
//!
//! A plugin chooses its headers, but not those that decide where and how
//! the request travels: `Host`, `Content-Length`, `Transfer-Encoding`,
//! `Connection`, `Upgrade`, `TE` and the other hop-by-hop headers are
//! refused, so the allow-list pins the virtual host too and the framing is
//! always the host's own. The headers are capped in count and total bytes.
//! The audit log is rate-limited per plugin (refused attempts included):
//! attempts past the rate are counted into the next record written, and
//! the host and path are cut to [`MAX_AUDIT_FIELD`] bytes.
//!
//! For the author harness the network can be replaced by scripted
//! responses ([`FixtureSet`]): the allow-list and the caps still apply.

use super::bindings::host_api::{HttpError, HttpHeader, HttpMethod, HttpRequest, HttpResponse};
use super::config::CallLimits;
use super::limits::Limit;
use super::manifest::Origin;
use super::sftp::SftpAuditRecord;
use super::state::PluginShared;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How an HTTP attempt ended, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpOutcome {
    /// Sent, and a response (of any status) was read in full.
    Completed,
    /// Refused before sending: the destination is not allowed.
    NotAllowed,
    /// Refused before sending: malformed URL, header or oversized body.
    Invalid,
    /// Refused before sending: the plugin's rate limit.
    RateLimited,
    /// Sent, no complete answer in time.
    Timeout,
    /// Sent; the response body passed the cap and reading stopped.
    TooLarge,
    /// Sent; connecting or reading failed.
    Transport,
    /// Not one attempt: the count (in `suppressed`) of attempts past the
    /// audit rate that were not recorded one by one.
    Suppressed,
}

/// One audited HTTP attempt. Holds no body and no query string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpAuditRecord {
    /// The plugin that asked.
    pub plugin: String,
    /// When the attempt started.
    pub at: SystemTime,
    /// The HTTP method.
    pub method: String,
    /// `scheme://host:port`, or the raw text when it did not parse.
    pub host: String,
    /// The URL path (no query).
    pub path: String,
    /// The response status, when one arrived.
    pub status: Option<u16>,
    /// How it ended.
    pub outcome: HttpOutcome,
    /// Request body bytes sent (0 when the request was not sent).
    pub bytes_sent: u64,
    /// Response body bytes read.
    pub bytes_received: u64,
    /// Attempts by this plugin before this one that the audit rate limit
    /// counted but did not record.
    #[serde(default)]
    pub suppressed: u64,
}

/// The longest URL the host accepts, in bytes (far beyond any API's, and
/// short enough that parsing and auditing it stays cheap).
pub const MAX_URL_BYTES: usize = 16 << 10;

/// The longest host or path an audit record keeps, in bytes.
pub const MAX_AUDIT_FIELD: usize = 512;

fn cut_field(text: &str) -> String {
    match super::limits::cut_at(text, MAX_AUDIT_FIELD) {
        (kept, 0) => kept.to_string(),
        (kept, cut) => format!("{kept}[cut {cut} bytes]"),
    }
}

/// Where audit records go. The daemon writes them to its audit log; tests
/// and the harness keep them in memory.
pub trait AuditSink: Send + Sync + 'static {
    /// Records one attempt.
    fn record(&self, record: &HttpAuditRecord);

    /// Records one SFTP operation (contract 0.3.0 `sftp`); by default as a
    /// `tracing` event with target `billd::audit`.
    fn record_sftp(&self, record: &SftpAuditRecord) {
        super::sftp::trace_audit(record);
    }
}

/// Writes audit records as `tracing` events with target `billd::audit`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingAudit;

impl AuditSink for TracingAudit {
    fn record(&self, r: &HttpAuditRecord) {
        tracing::info!(
            target: "billd::audit",
            plugin = %r.plugin,
            method = %r.method,
            host = %r.host,
            path = %r.path,
            status = r.status,
            outcome = ?r.outcome,
            bytes_sent = r.bytes_sent,
            bytes_received = r.bytes_received,
            suppressed = r.suppressed,
            "plugin http"
        );
    }
}

/// The most records a [`MemoryAudit`] keeps; later ones are counted.
pub const MEMORY_AUDIT_CAP: usize = 10_000;

/// Keeps audit records in memory (tests, the harness), at most
/// [`MEMORY_AUDIT_CAP`] of them, and also writes them to `tracing`.
#[derive(Debug, Default)]
pub struct MemoryAudit {
    records: Mutex<Vec<HttpAuditRecord>>,
    sftp: Mutex<Vec<SftpAuditRecord>>,
    overflow: AtomicU64,
}

impl MemoryAudit {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record so far, oldest first.
    pub fn records(&self) -> Vec<HttpAuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every SFTP record so far, oldest first.
    pub fn sftp_records(&self) -> Vec<SftpAuditRecord> {
        self.sftp.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records not kept because the log was full.
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, r: &HttpAuditRecord) {
        TracingAudit.record(r);
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() < MEMORY_AUDIT_CAP {
            records.push(r.clone());
        } else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn record_sftp(&self, r: &SftpAuditRecord) {
        super::sftp::trace_audit(r);
        let mut records = self.sftp.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() < MEMORY_AUDIT_CAP {
            records.push(r.clone());
        } else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A scripted response for the harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Which request it answers.
    pub request: FixtureRequest,
    /// What to answer.
    pub response: FixtureResponse,
}

/// The request a fixture matches: method and full URL (query included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The absolute URL.
    pub url: String,
}

/// A scripted answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureResponse {
    /// The status code (default 200).
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// A JSON body (sent with `content-type: application/json`).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// A text body.
    #[serde(default)]
    pub body: Option<String>,
}

fn ok_status() -> u16 {
    200
}

/// A request the fixtures received (bodies kept: the harness is a local
/// development tool working on test data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method.
    pub method: String,
    /// The URL.
    pub url: String,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Scripted responses standing in for the network.
#[derive(Debug, Default)]
pub struct FixtureSet {
    fixtures: Mutex<Vec<Fixture>>,
    received: Mutex<Vec<RecordedRequest>>,
}

/// Why fixtures could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FixtureError {
    /// The file or directory.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl FixtureSet {
    /// Fixtures from a list.
    pub fn new(fixtures: Vec<Fixture>) -> Self {
        Self {
            fixtures: Mutex::new(fixtures),
            received: Mutex::new(Vec::new()),
        }
    }

    /// Adds a fixture while the plugin runs (a test scripting the next
    /// answer). It is matched before every fixture given earlier, so it can
    /// replace one.
    pub fn add(&self, fixture: Fixture) {
        self.fixtures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(0, fixture);
    }

    /// Every `*.json` file of `dir` (see [`load_fixture_files`]).
    pub fn load_dir(dir: &Path) -> Result<Self, FixtureError> {
        load_fixture_files(dir).map(Self::new)
    }

    /// The requests answered (or not) so far.
    pub fn received(&self) -> Vec<RecordedRequest> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn answer(&self, req: &RecordedRequest) -> Option<FixtureResponse> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(req.clone());
        self.fixtures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|f| {
                f.request.method.eq_ignore_ascii_case(&req.method) && f.request.url == req.url
            })
            .map(|f| f.response.clone())
    }
}

/// Reads every `*.json` file of `dir`, in file-name order; each holds one
/// fixture or a list of them.
pub fn load_fixture_files(dir: &Path) -> Result<Vec<Fixture>, FixtureError> {
    {
        let err = |p: &Path, reason: String| FixtureError {
            path: p.display().to_string(),
            reason,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| err(dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut fixtures = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| err(&f, e.to_string()))?;
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum OneOrMany {
                One(Fixture),
                Many(Vec<Fixture>),
            }
            match serde_json::from_str::<OneOrMany>(&text)
                .map_err(|e| err(&f, format!("not a fixture (request + response): {e}")))?
            {
                OneOrMany::One(x) => fixtures.push(x),
                OneOrMany::Many(xs) => fixtures.extend(xs),
            }
        }
        Ok(fixtures)
    }
}

/// Where requests go: the network, or fixtures.
#[derive(Debug, Clone)]
pub enum HttpBackend {
    /// Real requests through reqwest.
    Network(reqwest::Client),
    /// Scripted responses (the author harness).
    Fixtures(Arc<FixtureSet>),
}

impl HttpBackend {
    /// The network backend: rustls, no redirects, no proxy from the
    /// environment.
    pub fn network() -> Result<Self, String> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("billd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(HttpBackend::Network)
            .map_err(|e| format!("building the HTTP client: {e}"))
    }
}

/// One plugin's HTTP policy: where it may go and how often.
pub(crate) struct HttpPolicy {
    /// Origins allowed by both the manifest and the practice.
    pub allowed: Vec<Origin>,
    limiter: DefaultDirectRateLimiter,
    pub limits: CallLimits,
    /// The audit record budget, shared by HTTP requests and SFTP
    /// operations.
    audit_rate: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
    sftp_suppressed: AtomicU64,
}

impl HttpPolicy {
    pub fn new(manifest: &[Origin], practice: &[Origin], limits: CallLimits) -> Self {
        let allowed = manifest
            .iter()
            .filter(|o| practice.contains(o))
            .cloned()
            .collect();
        let rps = NonZeroU32::new(limits.requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let aps =
            NonZeroU32::new(limits.max_audit_records_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = aps.saturating_mul(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN));
        Self {
            allowed,
            limiter: RateLimiter::direct(Quota::per_second(rps)),
            limits,
            audit_rate: RateLimiter::direct(Quota::per_second(aps).allow_burst(burst)),
            suppressed: AtomicU64::new(0),
            sftp_suppressed: AtomicU64::new(0),
        }
    }

    /// Whether an SFTP operation's record may be written now: the count of
    /// SFTP operations suppressed before it, or `None` (counted instead).
    pub fn admit_sftp(&self) -> Option<u64> {
        self.admit_counting(&self.sftp_suppressed)
    }

    /// Whether `rec` may be written now; if so, it carries the count of
    /// attempts suppressed before it.
    fn admit(&self, rec: &mut HttpAuditRecord) -> bool {
        match self.admit_counting(&self.suppressed) {
            Some(before) => {
                rec.suppressed = before;
                true
            }
            None => false,
        }
    }

    /// One record's place in the shared audit budget: `Some(count taken
    /// from suppressed)` when it may be written, else `None` and
    /// `suppressed` counts it.
    fn admit_counting(&self, suppressed: &AtomicU64) -> Option<u64> {
        if self.audit_rate.check().is_ok() {
            Some(suppressed.swap(0, Ordering::SeqCst))
        } else {
            suppressed.fetch_add(1, Ordering::SeqCst);
            None
        }
    }

    /// Takes the count of suppressed attempts not yet written.
    pub fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Ordering::SeqCst)
    }
}

/// Writes the count of attempts the audit rate suppressed and no later
/// record carried (at the end of a call): HTTP requests as one
/// [`HttpOutcome::Suppressed`] record, SFTP operations as one SFTP record
/// with outcome `suppressed`.
pub(crate) fn flush_suppressed(shared: &PluginShared) {
    let n = shared.http.sftp_suppressed.swap(0, Ordering::SeqCst);
    if n > 0 {
        shared.audit.record_sftp(&super::sftp::SftpAuditRecord {
            plugin: shared.name.clone(),
            at: SystemTime::now(),
            server: "-".into(),
            op: "-".into(),
            path: String::new(),
            bytes: 0,
            outcome: "suppressed".into(),
            suppressed: n,
        });
    }
    let n = shared.http.take_suppressed();
    if n > 0 {
        shared.audit.record(&HttpAuditRecord {
            plugin: shared.name.clone(),
            at: SystemTime::now(),
            method: "-".into(),
            host: "-".into(),
            path: String::new(),
            status: None,
            outcome: HttpOutcome::Suppressed,
            bytes_sent: 0,
            bytes_received: 0,
            suppressed: n,
        });
    }
}

/// Headers a plugin may not set: the host frames the request and names its
/// virtual host itself (a plugin-set `Host` would let an allowed origin's
/// address serve another site; framing headers would let a plugin smuggle
/// a second request or switch protocols).
pub const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// Checks the plugin's headers (count, total size, names, values) and
/// converts them. Never panics, whatever the input.
fn checked_headers(
    headers: &[HttpHeader],
    limits: &CallLimits,
) -> Result<Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>, (HttpError, bool)> {
    if headers.len() > limits.max_request_headers {
        return Err((
            HttpError::InvalidRequest(format!(
                "{} headers is over the limit of {}",
                headers.len(),
                limits.max_request_headers
            )),
            true,
        ));
    }
    let total: usize = headers
        .iter()
        .map(|h| h.name.len().saturating_add(h.value.len()))
        .fold(0, usize::saturating_add);
    if total > limits.max_request_header_bytes {
        return Err((
            HttpError::InvalidRequest(format!(
                "headers of {total} bytes are over the limit of {} bytes",
                limits.max_request_header_bytes
            )),
            true,
        ));
    }
    let mut out = Vec::with_capacity(headers.len());
    for h in headers {
        let name = reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| (HttpError::InvalidRequest("bad header name".into()), false))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err((
                HttpError::InvalidRequest(format!("header {name} is set by billd, not by plugins")),
                false,
            ));
        }
        let value = reqwest::header::HeaderValue::from_str(&h.value).map_err(|_| {
            (
                HttpError::InvalidRequest(format!("bad value for header {name}")),
                false,
            )
        })?;
        out.push((name, value));
    }
    Ok(out)
}

fn method_name(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Head => "HEAD",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
    }
}

/// Performs one request for the plugin under its policy; audits every
/// attempt (within the audit rate).
pub(crate) async fn send(
    shared: &PluginShared,
    req: HttpRequest,
    call_deadline: Instant,
) -> Result<HttpResponse, HttpError> {
    let policy = &shared.http;
    let method = method_name(req.method);
    let mut rec = HttpAuditRecord {
        plugin: shared.name.clone(),
        at: SystemTime::now(),
        method: method.to_string(),
        host: String::new(),
        path: String::new(),
        status: None,
        outcome: HttpOutcome::Invalid,
        bytes_sent: 0,
        bytes_received: 0,
        suppressed: 0,
    };
    let result = send_inner(shared, req, call_deadline, &mut rec).await;
    rec.host = cut_field(&rec.host);
    rec.path = cut_field(&rec.path);
    if policy.admit(&mut rec) {
        shared.audit.record(&rec);
    } else {
        shared.report(Limit::AuditRate);
    }
    result
}

async fn send_inner(
    shared: &PluginShared,
    req: HttpRequest,
    call_deadline: Instant,
    rec: &mut HttpAuditRecord,
) -> Result<HttpResponse, HttpError> {
    let policy = &shared.http;
    let backend = &shared.backend;
    if req.url.len() > MAX_URL_BYTES {
        rec.host = "(url too long)".into();
        return Err(HttpError::InvalidRequest(format!(
            "URL of {} bytes is over the {MAX_URL_BYTES} byte limit",
            req.url.len()
        )));
    }
    let url = match url::Url::parse(&req.url) {
        Ok(u) => u,
        Err(e) => {
            rec.host = "(unparsable url)".into();
            return Err(HttpError::InvalidRequest(format!("bad URL: {e}")));
        }
    };
    rec.path = url.path().to_string();
    let origin = match Origin::of_url(&url) {
        Ok(o) => o,
        Err(e) => {
            rec.host = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
            rec.outcome = HttpOutcome::NotAllowed;
            return Err(HttpError::NotAllowed(e));
        }
    };
    rec.host = origin.to_string();
    if !policy.allowed.contains(&origin) {
        rec.outcome = HttpOutcome::NotAllowed;
        return Err(HttpError::NotAllowed(format!(
            "{origin} is not allowed for this plugin (allowed: {})",
            if policy.allowed.is_empty() {
                "none".to_string()
            } else {
                policy
                    .allowed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    if req.body.len() as u64 > policy.limits.max_request_bytes {
        return Err(HttpError::InvalidRequest(format!(
            "request body of {} bytes is over the {} byte limit",
            req.body.len(),
            policy.limits.max_request_bytes
        )));
    }
    let headers = match checked_headers(&req.headers, &policy.limits) {
        Ok(h) => h,
        Err((e, over_limit)) => {
            if over_limit {
                shared.report(Limit::RequestHeaders);
            }
            return Err(e);
        }
    };
    if let Err(not_until) = policy.limiter.check() {
        rec.outcome = HttpOutcome::RateLimited;
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(HttpError::RateLimited(
            u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1),
        ));
    }
    let now = Instant::now();
    let left = call_deadline.saturating_duration_since(now);
    let mut timeout = policy.limits.http_timeout.min(left);
    if let Some(ms) = req.timeout_ms {
        timeout = timeout.min(Duration::from_millis(u64::from(ms)));
    }
    let cap = policy.limits.max_response_bytes;
    let body_len = req.body.len() as u64;

    match backend {
        HttpBackend::Network(client) => {
            let mut map = reqwest::header::HeaderMap::new();
            for (name, value) in headers {
                map.try_append(name, value).map_err(|_| {
                    HttpError::InvalidRequest("too many headers for one request".into())
                })?;
            }
            let m = reqwest::Method::from_bytes(rec.method.as_bytes())
                .map_err(|_| HttpError::InvalidRequest("bad method".into()))?;
            let fut = async {
                let sent = client
                    .request(m, url)
                    .headers(map)
                    .body(req.body)
                    .send()
                    .await;
                let mut resp = match sent {
                    Ok(r) => r,
                    Err(e) => {
                        // Nothing went out if the connection never opened;
                        // otherwise the body may have been sent in part.
                        if !e.is_connect() {
                            rec.bytes_sent = body_len;
                        }
                        return Err(HttpError::Transport(transport_reason(&e)));
                    }
                };
                // A response came: the server read the whole request.
                rec.bytes_sent = body_len;
                rec.status = Some(resp.status().as_u16());
                let resp_headers = resp
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| {
                        v.to_str().ok().map(|v| HttpHeader {
                            name: k.as_str().to_string(),
                            value: v.to_string(),
                        })
                    })
                    .collect();
                if resp.content_length().is_some_and(|n| n > cap) {
                    return Err(HttpError::TooLarge(cap));
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| HttpError::Transport(transport_reason(&e)))?
                {
                    rec.bytes_received += chunk.len() as u64;
                    if (body.len() + chunk.len()) as u64 > cap {
                        return Err(HttpError::TooLarge(cap));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(HttpResponse {
                    status: rec.status.unwrap_or(0),
                    headers: resp_headers,
                    body,
                })
            };
            let r = match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(HttpError::Timeout),
            };
            rec.outcome = match &r {
                Ok(_) => HttpOutcome::Completed,
                Err(HttpError::Timeout) => HttpOutcome::Timeout,
                Err(HttpError::TooLarge(_)) => HttpOutcome::TooLarge,
                Err(HttpError::InvalidRequest(_)) => HttpOutcome::Invalid,
                Err(_) => HttpOutcome::Transport,
            };
            r
        }
        HttpBackend::Fixtures(set) => {
            let recorded = RecordedRequest {
                method: rec.method.clone(),
                url: req.url.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: req.body,
            };
            rec.bytes_sent = body_len;
            let Some(f) = set.answer(&recorded) else {
                rec.outcome = HttpOutcome::Transport;
                return Err(HttpError::Transport(format!(
                    "no fixture answers {} {}",
                    rec.method, recorded.url
                )));
            };
            let mut headers: Vec<HttpHeader> = f
                .headers
                .iter()
                .map(|(k, v)| HttpHeader {
                    name: k.to_ascii_lowercase(),
                    value: v.clone(),
                })
                .collect();
            let body = match (&f.json, &f.body) {
                (Some(j), _) => {
                    if !headers.iter().any(|h| h.name == "content-type") {
                        headers.push(HttpHeader {
                            name: "content-type".into(),
                            value: "application/json".into(),
                        });
                    }
                    serde_json::to_vec(j).unwrap_or_default()
                }
                (None, Some(b)) => b.clone().into_bytes(),
                (None, None) => Vec::new(),
            };
            rec.status = Some(f.status);
            rec.bytes_received = (body.len() as u64).min(cap + 1);
            if body.len() as u64 > cap {
                rec.outcome = HttpOutcome::TooLarge;
                return Err(HttpError::TooLarge(cap));
            }
            rec.outcome = HttpOutcome::Completed;
            Ok(HttpResponse {
                status: f.status,
                headers,
                body,
            })
        }
    }
}

/// A transport error's reason without the URL (which may carry a query).
fn transport_reason(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connect failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else if e.is_request() {
        "sending the request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
