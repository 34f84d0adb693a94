//! Hostile test plugin: looks for files, directories and environment
//! variables, and for what an earlier call left in its memory (a static and
//! heap pages), and reports what it found in the plan name as JSON.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::types::*;
use std::sync::Mutex;

/// The member id of the call before, if this memory saw one.
static LEFT_BEHIND: Mutex<Option<String>> = Mutex::new(None);
/// Heap the probe allocates and marks: more than the host keeps resident.
const HEAP_PROBE: usize = 4 << 20;

struct Snoop;

impl PayerConnector for Snoop {
    fn check_eligibility(
        _key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let mut found: Vec<String> = Vec::new();
        {
            let mut left = LEFT_BEHIND.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(earlier) = left.as_ref() {
                found.push(format!(
                    "memory: an earlier member id, {} bytes",
                    earlier.len()
                ));
            }
            *left = Some(inquiry.subscriber.member_id.clone());
        }
        // A zeroed allocation from fresh memory is not cleared by the
        // allocator (fresh pages are zero), so marks of an earlier call at
        // the same addresses show if the host did not reset the pages.
        let mut heap = vec![0u8; HEAP_PROBE];
        let marked = heap.iter().step_by(4096).filter(|b| **b != 0).count();
        if marked > 0 {
            found.push(format!("memory: {marked} pages an earlier call marked"));
        }
        for i in (0..heap.len()).step_by(4096) {
            heap[i] = 0xA5;
        }
        std::mem::forget(heap);
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
