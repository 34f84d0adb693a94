//! The eligibility sweep end to end: patients, coverages and tomorrow's
//! appointments imported from CSV, `billd jobs run` of an eligibility job
//! through the sandbox payer connector against the payer sandbox on
//! loopback, verdicts and biller tasks as the sandbox scripts them.

use billd_e2e::{Scratch, base_config, sha256_file, stderr, stdout, workspace_root};
use chrono::{Days, Utc};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// The Python payer sandbox (scripts/payer-sandbox.py), stopped on drop.
struct PayerSandbox {
    child: Child,
    origin: String,
}

impl Drop for PayerSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_payer_sandbox(api_key: &str) -> PayerSandbox {
    let root = workspace_root();
    let mut child = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/payer-sandbox.py"))
        .args(["--port", "0", "--api-key", api_key])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the payer sandbox (run scripts/test to create .venv)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    PayerSandbox {
        child,
        origin: format!("http://{addr}"),
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

#[test]
fn a_sweep_of_tomorrows_appointments_stores_verdicts_and_raises_one_task_per_problem() {
    let sandbox = start_payer_sandbox("sandbox-key");
    let s = Scratch::new();
    std::fs::write(s.path("payer.key"), "sandbox-key\n").unwrap();
    // The package as built, its manifest allowing the sandbox's port.
    let built = workspace_root().join("plugins/dist/sandbox-payer");
    let pkg = s.path("sandbox-payer");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(
        built.join("sandbox_payer.wasm"),
        pkg.join("sandbox_payer.wasm"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(built.join("plugin.toml")).unwrap();
    let manifest = manifest.replace("http://127.0.0.1:8089", &sandbox.origin);
    std::fs::write(pkg.join("plugin.toml"), manifest).unwrap();
    s.write_config(&format!(
        r#"{}
[[plugin]]
name = "sandbox-payer"
path = "{}"
sha256 = "{pin}"
allowed_hosts = ["{origin}"]
settings = {{ base-url = "{origin}" }}
secrets = {{ api-key = "file:payer.key" }}

[[job]]
name = "eligibility"
kind = "eligibility"
schedule = "0 2 * * *"
concurrency = 4
[job.params]
connector = "sandbox-payer"
window_business_days = 30
"#,
        base_config("outbox_dir = \"outbox\""),
        pkg.display(),
        origin = sandbox.origin,
        pin = sha256_file(&pkg.join("sandbox_payer.wasm")),
    ));
    s.init();

    // Five patients; member ids drive the sandbox's answers.
    let members = [
        ("P1", "W100"),
        ("P2", "INACTIVE200"),
        ("P3", "NF300"),
        ("P4", "DOB400"),
        ("P5", "W500"),
    ];
    let mut patients = String::from("id,last_name,first_name,birth_date,sex\n");
    let mut coverages =
        String::from("id,patient_id,payer_id,payer_name,member_id,relationship,priority\n");
    let mut appointments = String::from("id,patient_id,provider_npi,start,minutes,status\n");
    let tomorrow = Utc::now().date_naive() + Days::new(2);
    for (i, (p, m)) in members.iter().enumerate() {
        patients.push_str(&format!("{p},Test{i},Pat,1980-01-0{},F\n", i + 1));
        coverages.push_str(&format!("C{i},{p},60054,Aetna,{m},self,primary\n"));
        // P5's visit is cancelled: not checked.
        let status = if *p == "P5" { "cancelled" } else { "booked" };
        appointments.push_str(&format!(
            "A{i},{p},1234567893,{tomorrow} 10:0{i},15,{status}\n"
        ));
    }
    for (kind, text) in [
        ("patients", &patients),
        ("coverages", &coverages),
        ("appointments", &appointments),
    ] {
        let file = s.path(&format!("{kind}.csv"));
        std::fs::write(&file, text).unwrap();
        let out = ok(&s.run(&["import", kind, file.to_str().unwrap()]));
        assert!(out.contains("5 new"), "{out}");
    }

    let out = ok(&s.run(&["jobs", "run", "eligibility"]));
    assert!(out.contains("(4 done, 0 failed of 4)"), "{out}");
    let tasks: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["tasks", "list", "--json"]))).unwrap();
    let mut kinds: Vec<(String, String)> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().to_string(),
                t["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    let shown: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        shown,
        [
            "eligibility-inactive",
            "eligibility-mismatch",
            "eligibility-not-found"
        ],
        "{kinds:?}"
    );
    for (_, subject) in &kinds {
        // Ids and codes, never the member id or the name.
        for secret in ["INACTIVE200", "NF300", "DOB400", "Test", "1980"] {
            assert!(!subject.contains(secret), "{subject}");
        }
    }
    assert!(
        kinds
            .iter()
            .any(|(_, s)| s.contains("subscriber.birth-date")),
        "{kinds:?}"
    );

    // Answered coverages are fresh: a second run right away asks again
    // only about the refused inquiry, and raises nothing new.
    let out = ok(&s.run(&["jobs", "run", "eligibility"]));
    assert!(out.contains("(1 done, 0 failed of 1)"), "{out}");
    let again: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["tasks", "list", "--json"]))).unwrap();
    assert_eq!(again.as_array().unwrap().len(), 3);
}
