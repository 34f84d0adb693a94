//! Hostile test plugin: looks for files, directories and environment
//! variables, and reports what it found in the plan name as JSON.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::types::*;

struct Snoop;

impl PayerConnector for Snoop {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let mut found: Vec<String> = Vec::new();
        for path in [
            "/etc/passwd",
            "/etc/hostname",
            "/proc/self/environ",
            "plugin.toml",
            "./Cargo.toml",
        ] {
            if let Ok(text) = std::fs::read_to_string(path) {
                found.push(format!("file {path}: {} bytes", text.len()));
            }
        }
        for dir in ["/", ".", "/tmp", "/work"] {
            if let Ok(entries) = std::fs::read_dir(dir) {
                found.push(format!("dir {dir}: {} entries", entries.count()));
            }
        }
        if std::fs::write("/tmp/billd-snoop-was-here", b"x").is_ok() {
            found.push("wrote /tmp/billd-snoop-was-here".into());
        }
        let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        if !vars.is_empty() {
            found.push(format!("env: {}", vars.join(",")));
        }
        for name in ["HOME", "PATH", "BILLD_SNOOP_CANARY"] {
            if std::env::var_os(name).is_some() {
                found.push(format!("env {name}"));
            }
        }
        let args: Vec<String> = std::env::args().collect();
        if !args.is_empty() {
            found.push(format!("args: {}", args.len()));
        }
        Ok(Eligibility {
            status: CoverageStatus::NotFound,
            plan_name: Some(format!("{found:?}")),
            group_number: None,
            coverage_begin: None,
            coverage_end: None,
            benefits: Vec::new(),
            payer_reference: None,
        })
    }
}

billd_plugin_sdk::export_payer_connector!(Snoop);
