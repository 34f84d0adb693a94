//! A test EHR connector for contract 0.3.0's `sftp` import. Its
//! `patients-changed` takes a script of SFTP operations as the cursor (a
//! JSON list of `{"op": "list"|"get"|"put"|"rename"|"remove", "server",
//! "path", "to", "text", "repeat"}`) and answers, as the next cursor, a JSON object:
//! each operation's result (`{"ok": …}` or `{"err": "kind: message"}`) and
//! `seen`, what the plugin could read of the server's credentials by other
//! means (`secret()` and `setting()` under every name a practice might
//! use): the host's tests check it read nothing.
use billd_plugin_sdk::ehr::*;
use billd_plugin_sdk::sftp::{self, SftpError};
use billd_plugin_sdk::types::*;
use billd_plugin_sdk::{secrets, settings};
use serde_json::{Value, json};

struct Probe;

#[derive(serde::Deserialize)]
struct Step {
    op: String,
    #[serde(default = "default_server")]
    server: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
    /// `put` writes `text` this many times (default once).
    #[serde(default)]
    repeat: usize,
}

fn default_server() -> String {
    "drop".into()
}

fn err(e: SftpError) -> Value {
    let (kind, m) = match e {
        SftpError::NotAllowed(m) => ("not-allowed", m),
        SftpError::HostKeyMismatch(m) => ("host-key-mismatch", m),
        SftpError::Auth(m) => ("auth", m),
        SftpError::NotFound(m) => ("not-found", m),
        SftpError::TooLarge(m) => ("too-large", m),
        SftpError::Timeout(m) => ("timeout", m),
        SftpError::Io(m) => ("io", m),
    };
    json!({ "err": format!("{kind}: {m}") })
}

fn run(step: &Step) -> Value {
    let s = step.server.as_str();
    let done = |r: Result<(), SftpError>| r.map_or_else(err, |()| json!({ "ok": null }));
    match step.op.as_str() {
        "list" => match sftp::list(s, &step.path) {
            Ok(entries) => json!({ "ok": entries.iter().map(|e| json!({
                "name": e.name, "size": e.size, "is_dir": e.is_dir,
                "mtime": e.mtime.as_ref().map(|t| t.seconds),
            })).collect::<Vec<_>>() }),
            Err(e) => err(e),
        },
        "get" => match sftp::get(s, &step.path) {
            Ok(b) => json!({ "ok": String::from_utf8_lossy(&b) }),
            Err(e) => err(e),
        },
        "put" => done(sftp::put(
            s,
            &step.path,
            step.text.repeat(step.repeat.max(1)).as_bytes(),
        )),
        "rename" => done(sftp::rename(s, &step.path, &step.to)),
        "remove" => done(sftp::remove(s, &step.path)),
        other => json!({ "err": format!("unknown op {other}") }),
    }
}

impl EhrConnector for Probe {
    fn appointments(_key: &str, _window: Window) -> Result<Vec<Appointment>, ConnectorError> {
        Err(ConnectorError::unsupported("appointments"))
    }

    fn patients_changed(_key: &str, since: Option<String>) -> Result<PatientPage, ConnectorError> {
        let script: Vec<Step> = serde_json::from_str(since.as_deref().unwrap_or("[]"))
            .map_err(|e| ConnectorError::invalid("since", e.to_string()))?;
        let results: Vec<Value> = script.iter().map(run).collect();
        let mut seen = Vec::new();
        for name in [
            "drop",
            "password",
            "private-key",
            "private_key",
            "drop-password",
            "drop-private-key",
            "sftp",
        ] {
            if secrets::get(name).is_some() {
                seen.push(format!("secret:{name}"));
            }
            if settings::text(name).is_some() {
                seen.push(format!("setting:{name}"));
            }
        }
        Ok(PatientPage {
            items: Vec::new(),
            next: Some(json!({ "results": results, "seen": seen }).to_string()),
        })
    }
}

billd_plugin_sdk::export_ehr_connector!(Probe);
