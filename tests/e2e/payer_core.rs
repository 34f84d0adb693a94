//! The core-clearinghouse connector against billd-sandbox over loopback,
//! through the real `billd plugins call` with a practice configuration (so
//! plugin state persists between calls, as in the daemon), for both CORE
//! transports: eligibility verdicts, a claim batch whose archived 837P
//! passes pyx12, a retried batch carrying the same PayloadID, 999/277CA
//! acknowledgments, claim status, a remittance, and every injected fault
//! mapped onto the right error variant.

use billd_e2e::{
    PayerSandbox as Sandbox, Scratch, base_config, core_package, core_plugin_table, pyx12_passes,
    stderr, venv_tool, workspace_root,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> Value {
    let p = workspace_root()
        .join("plugins/core-clearinghouse/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// A practice configured with the connector against the sandbox.
struct Practice {
    s: Scratch,
}

impl Practice {
    fn new(sb: &Sandbox, transport: &str) -> Practice {
        let s = Scratch::new();
        let plugin = core_plugin_table(&s, sb, transport, ", timeout-ms = 3000", "");
        s.write_config(&format!(
            "{}\n{plugin}",
            base_config("outbox_dir = \"outbox\"")
        ));
        s.init();
        Practice { s }
    }

    /// `billd plugins call`; returns the `ok` or `err` JSON.
    fn call(&self, func: &str, key: &str, input: &Value) -> Value {
        let file = self.s.path(&format!("{func}-{key}.json"));
        std::fs::write(&file, input.to_string()).unwrap();
        let out = self
            .s
            .billd()
            .args(["plugins", "call", "--plugin"])
            .arg(core_package())
            .args(["--func", func, "--input"])
            .arg(&file)
            .args(["--idempotency-key", key])
            .output()
            .unwrap();
        assert!(out.status.success(), "{func}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{func}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn ok(&self, func: &str, key: &str, input: &Value) -> Value {
        let v = self.call(func, key, input);
        v.get("ok")
            .cloned()
            .unwrap_or_else(|| panic!("{func}: {v}"))
    }

    fn err(&self, func: &str, key: &str, input: &Value) -> Value {
        let v = self.call(func, key, input);
        v.get("err")
            .cloned()
            .unwrap_or_else(|| panic!("{func} should fail: {v}"))
    }
}

fn inquiry(member: &str, last: &str) -> Value {
    let mut q = fixture("eligibility-active.json");
    q["subscriber"]["member-id"] = json!(member);
    q["subscriber"]["name"]["last"] = json!(last);
    q
}

fn claims(ids: &[&str]) -> Value {
    let one = fixture("claims.json")[0].clone();
    Value::Array(
        ids.iter()
            .map(|id| {
                let mut c = one.clone();
                c["claim-id"] = json!(id);
                c
            })
            .collect(),
    )
}

fn run_transport(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(
        &workspace_root().join("sandbox/scenarios/demo.toml"),
        dir.path().join("archive"),
    );
    let p = Practice::new(&sb, transport);

    // Eligibility: active, inactive, not found.
    let e = p.ok("check-eligibility", "elig-1", &inquiry("M1001", "Doe"));
    assert_eq!(e["status"], "active", "{e}");
    assert_eq!(e["plan-name"], "GOLD PPO");
    assert_eq!(e["group-number"], "GRP100");
    let benefit = |kind: &str| {
        e["benefits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in {e}"))
    };
    assert_eq!(benefit("deductible-remaining")["amount"], 50000);
    assert_eq!(benefit("copay")["amount"], 2500);
    assert_eq!(benefit("coinsurance")["percent-basis-points"], 2000);
    let mut q = inquiry("M1002", "Roe");
    q["subscriber"]["birth-date"] = json!({"year": 1975, "month": 11, "day": 30});
    let e = p.ok("check-eligibility", "elig-2", &q);
    assert_eq!(e["status"], "inactive", "{e}");
    let e = p.ok("check-eligibility", "elig-3", &inquiry("NOSUCH9", "Doe"));
    assert_eq!(e["status"], "not-found", "{e}");
    // A birth-date mismatch is the payer's refusal with its AAA code.
    let mut q = inquiry("M1001", "Doe");
    q["subscriber"]["birth-date"]["year"] = json!(1999);
    let err = p.err("check-eligibility", "elig-4", &q);
    assert_eq!(err["rejected"]["code"], "71", "{err}");

    // A batch, then the same batch retried under its key.
    let batch = claims(&["PCN1001", "PCN1002", "PCN1003"]);
    let r1 = p.ok("submit-claims", "batch-1", &batch);
    let r2 = p.ok("submit-claims", "batch-1", &batch);
    assert_eq!(r1["batch-id"], r2["batch-id"], "a retry keeps its numbers");
    assert_eq!(r1["message"], r2["message"], "a retry keeps its PayloadID");
    let r3 = p.ok("submit-claims", "batch-2", &claims(&["PCN1005"]));
    assert_ne!(
        r3["batch-id"], r1["batch-id"],
        "a new batch gets new numbers"
    );
    let sent = sb.archived("X12_837_Request_005010X222A1");
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0].0, sent[1].0, "the retry carried the same PayloadID");
    assert_ne!(sent[0].0, sent[2].0);
    // Every claim exactly once across distinct PayloadIDs.
    let mut seen = BTreeSet::new();
    let mut clm01 = Vec::new();
    for (id, path) in &sent {
        if seen.insert(id.clone()) {
            let text = std::fs::read_to_string(path).unwrap();
            clm01.extend(
                text.split('~')
                    .map(str::trim)
                    .filter_map(|s| s.strip_prefix("CLM*"))
                    .map(|s| s.split('*').next().unwrap().to_owned()),
            );
        }
    }
    clm01.sort();
    assert_eq!(clm01, ["PCN1001", "PCN1002", "PCN1003", "PCN1005"]);
    pyx12_passes(&sent.iter().map(|s| s.1.clone()).collect::<Vec<_>>());

    // Acknowledgments: a 999 per batch, a 277CA per claim.
    let page = p.ok("fetch-acknowledgments", "acks-1", &Value::Null);
    let items = page["items"].as_array().unwrap();
    let functional: Vec<&Value> = items.iter().filter(|a| a["kind"] == "functional").collect();
    assert_eq!(functional.len(), 2, "{page}");
    assert!(functional.iter().all(|a| a["outcome"] == "accepted"));
    assert!(functional.iter().any(|a| a["batch-id"] == r1["batch-id"]));
    let claim = |id: &str| {
        items
            .iter()
            .find(|a| a["kind"] == "claim" && a["claim-id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no 277CA for {id}: {page}"))
    };
    assert_eq!(claim("PCN1001")["outcome"], "accepted");
    assert_eq!(claim("PCN1001")["payer-claim-id"], "ICN5550001");
    assert_eq!(claim("PCN1003")["outcome"], "rejected");
    assert_eq!(claim("PCN1003")["errors"][0]["code"], "A7:21");
    // From the cursor on, nothing new.
    let again = p.ok("fetch-acknowledgments", "acks-2", &page["next"]);
    assert_eq!(again["items"], json!([]), "{again}");

    // Claim status advances A1 → A2 → F1; an unknown claim is not found.
    let mut status = fixture("status.json");
    status[1]["claim-id"] = json!("PCN0000");
    let mut states = Vec::new();
    for k in 0..3 {
        let r = p.ok("claim-status", &format!("status-{k}"), &status);
        assert_eq!(r[1]["state"], "not-found", "{r}");
        states.push(format!(
            "{}:{}",
            r[0]["state"].as_str().unwrap(),
            r[0]["category-code"].as_str().unwrap()
        ));
    }
    assert_eq!(states, ["acknowledged:A1", "acknowledged:A2", "paid:F1"]);

    // Finalized: its remittance.
    let page = p.ok("fetch-remittances", "remits-1", &Value::Null);
    let r = &page["items"][0];
    assert_eq!(r["trace-number"], "EFT0001", "{page}");
    assert_eq!(r["payment-amount"], 8000);
    assert_eq!(r["payer-id"], "SANDBOXPAYER");
    assert_eq!(r["claims"][0]["claim-id"], "PCN1001");
    assert_eq!(r["claims"][0]["paid"], 8000);
    assert_eq!(r["claims"][0]["patient-responsibility"], 2500);

    // Faults, each onto its variant.
    let q = inquiry("M1001", "Doe");
    sb.fault(&json!({"kind": "http500"}).to_string());
    assert!(p.err("check-eligibility", "f-1", &q)["transient"].is_string());
    sb.fault(&json!({"kind": "http429", "retry_after_seconds": 7}).to_string());
    let err = p.err("check-eligibility", "f-2", &q);
    assert_eq!(err["rate-limited"]["retry-after-seconds"], 7, "{err}");
    sb.fault(&json!({"kind": "slow", "delay_ms": 4000}).to_string());
    assert!(p.err("check-eligibility", "f-3", &q)["transient"].is_string());
    sb.fault(&json!({"kind": "malformed-x12"}).to_string());
    let err = p.err("check-eligibility", "f-4", &q);
    assert!(
        err["transient"].as_str().unwrap().contains("does not read"),
        "{err}"
    );
    sb.fault(&json!({"kind": "envelope-error"}).to_string());
    let err = p.err("check-eligibility", "f-5", &q);
    assert_eq!(
        err["invalid-request"]["field"], "envelope.PayloadType",
        "{err}"
    );
    sb.fault(&json!({"kind": "envelope-error", "error_code": "ReceiverBusy"}).to_string());
    assert!(p.err("check-eligibility", "f-6", &q)["transient"].is_string());
    sb.fault(&json!({"kind": "bad-credentials"}).to_string());
    assert!(p.err("submit-claims", "f-7", &claims(&["PCN1009"]))["authentication"].is_string());
    // After the faults, a normal answer again.
    assert_eq!(p.ok("check-eligibility", "f-8", &q)["status"], "active");

    linuxforhealth_reads(
        &sb.archived("X12_270_Request_005010X279A1")
            .into_iter()
            .chain(sb.archived("X12_276_Request_005010X212"))
            .map(|s| s.1)
            .collect::<Vec<_>>(),
    );
}

fn linuxforhealth_reads(files: &[PathBuf]) {
    assert!(!files.is_empty());
    let script = workspace_root().join("plugin-sdk/x12/tests/lfh_read.py");
    let out = Command::new(venv_tool("python"))
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for f in files {
        let line = text
            .lines()
            .find(|l| l.contains(&*f.display().to_string()))
            .unwrap_or_else(|| panic!("no verdict for {}: {text}", f.display()));
        assert!(line.starts_with("OK "), "linuxforhealth-x12: {line}");
    }
}

#[test]
fn the_core_connector_works_against_the_sandbox_over_soap() {
    run_transport("soap");
}

#[test]
fn the_core_connector_works_against_the_sandbox_over_mime() {
    run_transport("mime");
}
