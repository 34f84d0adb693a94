//! The payer slice end to end with the real connector: claims imported from
//! an 837P, `billd jobs run submission` through core-clearinghouse to
//! billd-sandbox over loopback (both CORE transports), the 999 and 277CA
//! moving them along, `billd jobs run claim-status` following them to paid
//! and denied, a task for each rejection and denial; and kill -9 of the
//! daemon in the middle of a submission batch, after which every claim is
//! in the sandbox's archive exactly once (CLM01 counted across distinct
//! PayloadIDs), and every archived 837P passes pyx12.

use billd_e2e::{
    Scratch, base_config, pyx12_passes, sandbox_bin, sha256_file, stderr, stdout, wait_until,
    workspace_root,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// billd-sandbox on the first free port of the connector manifest's
/// 8090-8099, with a scenario written for the test.
struct Sandbox {
    child: Child,
    port: u16,
    archive: PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sandbox {
    fn start(dir: &Path, scenario: &str) -> Sandbox {
        let file = dir.join("scenario.toml");
        std::fs::write(&file, scenario).unwrap();
        let archive = dir.join("archive");
        for port in 8090..8100u16 {
            let mut child = Command::new(sandbox_bin())
                .args(["payer", "--scenario"])
                .arg(&file)
                .args(["--listen", &format!("127.0.0.1:{port}"), "--archive"])
                .arg(&archive)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("billd-sandbox starts");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
            if line.starts_with("listening on ") {
                return Sandbox {
                    child,
                    port,
                    archive,
                };
            }
            let _ = child.wait();
        }
        panic!("no free port in 127.0.0.1:8090-8099 for the sandbox");
    }

    /// Arms a fault through the control API.
    fn fault(&self, json: &str) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST /_sandbox/faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    }

    /// Disarms every fault.
    fn clear_faults(&self) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "DELETE /_sandbox/faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
    }

    /// The archived 837Ps, one per distinct PayloadID.
    fn submissions(&self) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&self.archive)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.split_once("-X12_837_Request_005010X222A1-") {
                out.entry(rest.1.trim_end_matches(".x12").to_string())
                    .or_insert(e.path());
            }
        }
        out
    }

    /// How often each CLM01 was submitted, across distinct PayloadIDs.
    fn clm01_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for path in self.submissions().values() {
            let text = std::fs::read_to_string(path).unwrap();
            for seg in text.split('~') {
                if let Some(rest) = seg.trim().strip_prefix("CLM*") {
                    let id = rest.split('*').next().unwrap().to_string();
                    *counts.entry(id).or_insert(0) += 1;
                }
            }
        }
        counts
    }
}

/// `n` clean professional claims: copies of a public 837P sample
/// (LinuxForHealth's demo.example1) with their own CLM01, member id and
/// interchange number, ICD-10 diagnoses and a recent date of service, the
/// patient made the subscriber (the contract's dependent carries no
/// address, which an 837P needs), one interchange each, in one file.
fn claims_837(n: usize, prefix: &str) -> String {
    let sample = std::fs::read_to_string(
        workspace_root().join("tests/fixtures/x12/837P/lfh__demo.example1.837"),
    )
    .unwrap();
    let dos = (chrono::Utc::now().date_naive() - chrono::Days::new(10))
        .format("%Y%m%d")
        .to_string();
    (0..n)
        .map(|i| {
            sample
                .replace("HL*2*1*22*1~", "HL*2*1*22*0~")
                .replace("SBR*P**2222-SJ", "SBR*P*18*2222-SJ")
                .replace(
                    "NM1*IL*1*SMITH*JANE****MI*JS00111223333~\nNM1*PR*2*KEY INSURANCE COMPANY*****PI*999996666~\nHL*3*2*23*0~\nPAT*19~\nNM1*QC*1*SMITH*TED~\nN3*236 N MAIN ST~\nN4*MIAMI*FL*33413~\nDMG*D8*19730501*M~\n",
                    "NM1*IL*1*SMITH*TED****MI*JS00111223333~\nN3*236 N MAIN ST~\nN4*MIAMI*FL*33413~\nDMG*D8*19730501*M~\nNM1*PR*2*KEY INSURANCE COMPANY*****PI*999996666~\n",
                )
                .replace("SE*40*0021", "SE*37*0021")
                .replace("CLM*26463774*", &format!("CLM*{prefix}{i:04}*"))
                .replace("JS00111223333", &format!("M{prefix}{i:04}"))
                .replace("000000907", &format!("{:09}", 100 + i))
                .replace("HI*BK:0340*BF:V7389", "HI*ABK:J029*ABF:Z0000")
                .replace("20061003", &dos)
                .replace("20061010", &dos)
        })
        .collect()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

/// A practice configured with the core-clearinghouse connector against the
/// sandbox over `transport`, and submission and claim-status jobs.
fn practice(s: &Scratch, sandbox: &Sandbox, transport: &str) {
    practice_with(s, sandbox, transport, "");
}

/// [`practice`] with `extra` lines in both jobs' params.
fn practice_with(s: &Scratch, sandbox: &Sandbox, transport: &str, extra: &str) {
    let pkg = workspace_root().join("plugins/dist/core-clearinghouse");
    std::fs::write(s.path("core.user"), "billd\n").unwrap();
    std::fs::write(s.path("core.pass"), "sandbox-password\n").unwrap();
    let origin = format!("http://127.0.0.1:{}", sandbox.port);
    s.write_config(&format!(
        r#"{}
[[plugin]]
name = "core-clearinghouse"
path = "{}"
sha256 = "{}"
allowed_hosts = ["{origin}"]
settings = {{ base-url = "{origin}", transport = "{transport}" }}
secrets = {{ username = "file:core.user", password = "file:core.pass" }}

[[job]]
name = "submission"
kind = "submission"
schedule = "0 3 * * *"
concurrency = 1
[job.params]
connector = "core-clearinghouse"
batch_size = 25
first_check_days = 0
{extra}

[[job]]
name = "claim-status"
kind = "claim-status"
schedule = "0 4 * * *"
[job.params]
connector = "core-clearinghouse"
{extra}
"#,
        base_config("outbox_dir = \"outbox\""),
        pkg.display(),
        sha256_file(&pkg.join("core_clearinghouse.wasm")),
    ));
    s.init();
}

const SCENARIO_HEAD: &str = r#"status_advance = "per-inquiry"
[payer]
id = "SANDBOXPAYER"
name = "SANDBOX HEALTH PLAN"
core_id = "SANDBOXPAYER"
[[credentials]]
username = "billd"
password = "sandbox-password"
"#;

fn claims_by_state(s: &Scratch) -> BTreeMap<String, String> {
    let list: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["claims", "list", "--json"]))).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["control_number"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn task_kinds(s: &Scratch) -> Vec<String> {
    let tasks: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["tasks", "list", "--json"]))).unwrap();
    let mut kinds: Vec<String> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn claims_go_out_and_are_followed_to_paid_denied_and_rejected() {
    let s = Scratch::new();
    let scenario = format!(
        r#"{SCENARIO_HEAD}
[[claims]]
claim_id = "FL0000"
status = ["F1:65"]
[[claims]]
claim_id = "FL0001"
ack_277ca = "rejected"
ack_277ca_category = "A7"
ack_277ca_status = "562"
ack_277ca_text = "ENTITY IDENTIFIER INVALID"
[[claims]]
claim_id = "FL0002"
status = ["F2:88"]
[[claims]]
claim_id = "FL0003"
status = ["P1:20"]
"#
    );
    let sandbox = Sandbox::start(s.path("").as_path(), &scenario);
    practice(&s, &sandbox, "soap");
    std::fs::write(s.path("batch.837"), claims_837(4, "FL")).unwrap();
    let out = ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));
    assert!(out.contains("4 new"), "{out}");
    // A second import of the same file changes nothing.
    let out = ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));
    assert!(out.contains("0 new, 0 changed, 4 unchanged"), "{out}");

    // One run: scrubbed, batched, sent, then the 999 and 277CA applied.
    let out = ok(&s.run(&["jobs", "run", "submission"]));
    assert!(out.contains("(2 done, 0 failed of 2)"), "{out}");
    let states = claims_by_state(&s);
    assert_eq!(states["FL0000"], "acknowledged", "{states:?}");
    assert_eq!(states["FL0001"], "rejected", "{states:?}");
    assert_eq!(sandbox.clm01_counts().values().sum::<usize>(), 4);

    let out = ok(&s.run(&["jobs", "run", "claim-status"]));
    assert!(
        out.contains("(4 done, 0 failed of 4)") || out.contains("(3 done, 0 failed of 3)"),
        "{out}\n{}",
        ok(&s.run(&["claims", "show", "1912301953-FL0000"]))
    );
    let states = claims_by_state(&s);
    assert_eq!(
        states.values().map(String::as_str).collect::<Vec<_>>(),
        ["paid", "rejected", "denied", "pending"],
        "{states:?}\n{}",
        ok(&s.run(&["claims", "show", "1912301953-FL0000"]))
    );
    assert_eq!(task_kinds(&s), ["claim-denied", "claim-rejected"]);

    // The claim's history names each step's source.
    let show = ok(&s.run(&["claims", "show", "1912301953-FL0000"]));
    for step in ["[import]", "[billd]", "[999]", "[277CA]", "[277]"] {
        assert!(show.contains(step), "{show}");
    }

    // Nothing is sent twice: another submission run has nothing to send.
    let out = ok(&s.run(&["jobs", "run", "submission"]));
    assert!(out.contains("(1 done, 0 failed of 1)"), "{out}");
    assert!(sandbox.clm01_counts().values().all(|&n| n == 1));
    pyx12_accepts(&sandbox);
}

/// Every archived 837P passes pyx12.
fn pyx12_accepts(sandbox: &Sandbox) {
    let files: Vec<PathBuf> = sandbox.submissions().into_values().collect();
    assert!(!files.is_empty());
    pyx12_passes(&files);
}

fn killed_mid_batch_then_restarted(transport: &str) {
    let s = Scratch::new();
    let sandbox = Sandbox::start(s.path("").as_path(), SCENARIO_HEAD);
    practice(&s, &sandbox, transport);
    std::fs::write(s.path("batch.837"), claims_837(60, "KL")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));
    // The first batch's answer is slow (15 s, inside the plugin's 19 s
    // timeout): the daemon dies while it waits.
    sandbox.fault(r#"{"kind": "slow", "count": 1, "delay_ms": 15000}"#);
    let mut daemon = s.start_daemon("daemon1.log");
    wait_until(Duration::from_secs(90), "the control socket", || {
        daemon.log_text().contains("control socket ready")
    });
    let mut run = s.billd();
    let run_log = std::fs::File::create(s.path("run.log")).unwrap();
    let mut run = run
        .args(["jobs", "run", "submission"])
        .stdout(Stdio::null())
        .stderr(run_log)
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(120),
        "the first 837 in the archive",
        || {
            if let Ok(Some(status)) = run.try_wait() {
                panic!(
                    "jobs run ended before the kill ({status}): {}\n{}",
                    std::fs::read_to_string(s.path("run.log")).unwrap_or_default(),
                    std::fs::read_to_string(s.path("daemon1.log")).unwrap_or_default()
                );
            }
            !sandbox.submissions().is_empty()
        },
    );
    daemon.kill9();
    let _ = run.wait();

    let mut daemon = s.start_daemon("daemon2.log");
    wait_until(
        Duration::from_secs(120),
        "the resumed run to finish",
        || {
            let out = s.run(&["jobs", "history", "submission", "--json"]);
            stdout(&out).contains("\"succeeded\"")
        },
    );
    daemon.stop();
    // The batch in flight at the kill went again after the restart, under
    // its own PayloadID: archived twice, one distinct submission.
    let archived = std::fs::read_dir(&sandbox.archive)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("X12_837_Request"))
        .count();
    assert_eq!(
        archived,
        sandbox.submissions().len() + 1,
        "resent once\n{}\n---\n{}",
        std::fs::read_to_string(s.path("daemon1.log")).unwrap_or_default(),
        std::fs::read_to_string(s.path("daemon2.log")).unwrap_or_default()
    );
    let counts = sandbox.clm01_counts();
    assert_eq!(counts.len(), 60, "{counts:?}");
    let twice: BTreeSet<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    pyx12_accepts(&sandbox);
}

#[test]
fn kill_9_mid_batch_sends_every_claim_exactly_once_over_both_transports() {
    // One after the other: two daemons killed at once would race each
    // other for the machine, not for the claims.
    killed_mid_batch_then_restarted("soap");
    killed_mid_batch_then_restarted("mime");
}

#[test]
fn faults_end_in_retries_then_one_task_and_no_claim_is_lost_or_sent_twice() {
    let s = Scratch::new();
    let sandbox = Sandbox::start(s.path("").as_path(), SCENARIO_HEAD);
    practice_with(
        &s,
        &sandbox,
        "mime",
        "max_attempts = 2\nretry_delay = \"1s\"",
    );
    std::fs::write(s.path("batch.837"), claims_837(3, "FT")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));

    // The clearinghouse fails every request: both items (the batch and the
    // acknowledgment fetch) are tried twice, then fail; one task.
    sandbox.fault(r#"{"kind": "http500", "count": 50}"#);
    let out = s.run(&["jobs", "run", "submission"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("(0 done, 2 failed of 2)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(task_kinds(&s), ["job-failing"]);
    let states = claims_by_state(&s);
    assert!(states.values().all(|st| st == "ready"), "{states:?}");

    // Healthy again but rate-limiting once: the next run waits as told
    // and sends the same batch under the same PayloadID.
    sandbox.clear_faults();
    sandbox.fault(r#"{"kind": "http429", "count": 1, "retry_after_seconds": 1}"#);
    let out = ok(&s.run(&["jobs", "run", "submission"]));
    assert!(out.contains("(2 done, 0 failed of 2)"), "{out}");
    let states = claims_by_state(&s);
    assert!(states.values().all(|st| st == "acknowledged"), "{states:?}");
    assert_eq!(sandbox.submissions().len(), 1, "one batch, one PayloadID");
    assert!(sandbox.clm01_counts().values().all(|&n| n == 1));
    assert_eq!(sandbox.clm01_counts().len(), 3);

    // Wrong credentials need a person: no retries, one more task.
    sandbox.fault(r#"{"kind": "bad-credentials", "count": 50}"#);
    let out = s.run(&["jobs", "run", "claim-status"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let tasks: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["tasks", "list", "--json"]))).unwrap();
    let subjects: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|t| t.contains("claim-status") && t.contains("authentication")),
        "{subjects:?}"
    );
    let states = claims_by_state(&s);
    assert!(states.values().all(|st| st == "acknowledged"), "{states:?}");
}
